# Builds and installs the C library: `make install PREFIX=/opt/grpcpool`, then
# `cc app.c $(pkg-config --cflags --libs grpcpool)` with PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig,
# or CMake's `find_package(grpcpool CONFIG REQUIRED)` with CMAKE_PREFIX_PATH=$PREFIX.
PREFIX ?= /usr/local
PROFILE ?= release
DESTDIR ?=
CARGO ?= cargo

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
MAJOR := $(firstword $(subst ., ,$(VERSION)))
OUT := target/$(if $(filter release,$(PROFILE)),release,debug)
LIBDIR := $(DESTDIR)$(PREFIX)/lib
INCLUDEDIR := $(DESTDIR)$(PREFIX)/include
CMAKEDIR := $(LIBDIR)/cmake/grpcpool

.PHONY: all lib install uninstall header

all: lib

lib:
	$(CARGO) build --locked -p grpcpool-ffi $(if $(filter release,$(PROFILE)),--release)

header:
	bash scripts/gen-header.sh

install: lib
	install -d $(LIBDIR)/pkgconfig $(INCLUDEDIR)
	install -m 644 include/grpcpool.h include/grpcpool.hpp $(INCLUDEDIR)/
	install -m 755 $(OUT)/libgrpcpool.so $(LIBDIR)/libgrpcpool.so.$(VERSION)
	ln -sf libgrpcpool.so.$(VERSION) $(LIBDIR)/libgrpcpool.so.$(MAJOR)
	ln -sf libgrpcpool.so.$(MAJOR) $(LIBDIR)/libgrpcpool.so
	install -m 644 $(OUT)/libgrpcpool.a $(LIBDIR)/libgrpcpool.a
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' ffi/grpcpool.pc.in > $(LIBDIR)/pkgconfig/grpcpool.pc
	install -d $(CMAKEDIR)
	sed -e 's|@VERSION@|$(VERSION)|g' -e 's|@MAJOR@|$(MAJOR)|g' ffi/grpcpool-config.cmake.in > $(CMAKEDIR)/grpcpool-config.cmake
	sed -e 's|@VERSION@|$(VERSION)|g' ffi/grpcpool-config-version.cmake.in > $(CMAKEDIR)/grpcpool-config-version.cmake

uninstall:
	rm -f $(INCLUDEDIR)/grpcpool.h $(INCLUDEDIR)/grpcpool.hpp $(LIBDIR)/libgrpcpool.* $(LIBDIR)/pkgconfig/grpcpool.pc
	rm -rf $(CMAKEDIR)
