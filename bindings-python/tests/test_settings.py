"""The pool settings come from core's table: every setting there is a keyword of Pool and
aio.Pool, typed in PoolSettings, and converted by its type (a wrong Python type is a TypeError,
a value out of range a ValueError)."""

from __future__ import annotations

import asyncio
import math
from typing import Any, Dict, List, Tuple

import pytest

import grpcpool
import grpcpool.aio
from grpcpool import _native
from grpcpool._settings import SETTING_NAMES, PoolSettings

from conftest import Pem

#: The table: (name, type, what zero turns off, per_target, default).
TABLE = _native.settings()
NAMES = [row[0] for row in TABLE]


def valid_settings(name: str, kind: str, default: Any, pem: Pem) -> Dict[str, Any]:
    """Keyword arguments giving setting ``name`` a valid value: its default where it has one;
    real PEM (a client certificate together with its key, which it needs); a host name."""
    if kind == "pem":
        # The certificate is self-signed, so it serves as a CA as well.
        pair = {"tls_client_cert_pem": pem.cert, "tls_client_key_pem": pem.key}
        return {"tls_ca_pem": pem.cert} if name == "tls_ca_pem" else pair
    if kind == "text":
        return {name: default if default is not None else "localhost"}
    if kind == "json":
        return {name: default if default is not None else {}}
    assert default is not None, f"{name} ({kind}) has no default"
    return {name: default}


def test_the_table_is_complete_and_typed() -> None:
    assert len(NAMES) == len(set(NAMES)) > 20
    kinds = {row[1] for row in TABLE}
    assert kinds == {"integer", "number", "duration", "bool", "pem", "text", "json"}
    # The generated PoolSettings and SETTING_NAMES are the table, in its order.
    assert set(PoolSettings.__annotations__) == set(NAMES)
    assert list(SETTING_NAMES) == NAMES
    # The conveniences add to the settings, never replace one.
    extra = set(grpcpool.PoolOptions.__annotations__) - set(NAMES)
    assert extra == {"tls_ca_file", "tls_client_cert", "tls_client_key", "targets"}
    # A target's own settings are the table's per-target ones.
    assert set(grpcpool.TargetSettings.__annotations__) == {row[0] for row in TABLE if row[3]}
    for name, kind, off, per_target, default in TABLE:
        assert isinstance(per_target, bool)
        assert off is None or (kind == "duration" and isinstance(off, str)), name
        if kind == "duration":
            assert isinstance(default, float) and default > 0, name
        elif kind == "integer":
            assert isinstance(default, int) and not isinstance(default, bool), name
        elif kind == "bool":
            assert isinstance(default, bool), name


@pytest.mark.parametrize("row", TABLE, ids=NAMES)
def test_every_core_setting_is_a_keyword_of_both_pools(row: Tuple[Any, ...], pem: Pem) -> None:
    name, kind, _off, _per_target, default = row
    settings = valid_settings(name, kind, default, pem)
    assert name in settings
    grpcpool.Pool(**settings).close()

    async def main() -> None:
        await grpcpool.aio.Pool(**settings).close()

    asyncio.run(main())


def test_every_setting_at_its_default_at_once(pem: Pem) -> None:
    settings: Dict[str, Any] = {}
    for name, kind, _off, _per_target, default in TABLE:
        settings.update(valid_settings(name, kind, default, pem))
    assert set(settings) == set(NAMES)
    grpcpool.Pool(**settings).close()


def rows_of(*kinds: str) -> List[Tuple[Any, ...]]:
    return [row for row in TABLE if row[1] in kinds]


@pytest.mark.parametrize("row", rows_of("integer", "number", "duration"), ids=lambda row: row[0])
def test_numbers_refuse_bools_and_text(row: Tuple[Any, ...]) -> None:
    name = row[0]
    for wrong in (True, False, "1", b"1", [1]):
        with pytest.raises(TypeError, match=name):
            grpcpool.Pool(**{name: wrong})


@pytest.mark.parametrize("row", rows_of("integer"), ids=lambda row: row[0])
def test_integers(row: Tuple[Any, ...]) -> None:
    name = row[0]
    with pytest.raises(TypeError, match=name):
        grpcpool.Pool(**{name: 4.0})
    with pytest.raises(ValueError, match=f"{name} must be >= 0"):
        grpcpool.Pool(**{name: -1})
    with pytest.raises(ValueError, match=name):
        grpcpool.Pool(**{name: 1 << 70})


@pytest.mark.parametrize("row", rows_of("number"), ids=lambda row: row[0])
def test_real_numbers(row: Tuple[Any, ...]) -> None:
    name, default = row[0], row[4]
    grpcpool.Pool(**{name: float(default)}).close()
    for wrong in (math.nan, math.inf):
        with pytest.raises(ValueError, match=name):
            grpcpool.Pool(**{name: wrong})


@pytest.mark.parametrize("row", rows_of("duration"), ids=lambda row: row[0])
def test_durations(row: Tuple[Any, ...]) -> None:
    name, off, default = row[0], row[2], row[4]
    # Whole seconds as an int are seconds too.
    grpcpool.Pool(**{name: max(1, int(default))}).close()
    for wrong in (-1.0, -1, math.nan):
        with pytest.raises(ValueError, match=name):
            grpcpool.Pool(**{name: wrong})
    if off is not None:
        # Zero and infinity both turn it off.
        grpcpool.Pool(**{name: 0}).close()
        grpcpool.Pool(**{name: math.inf}).close()
    else:
        with pytest.raises(ValueError, match=f"{name} cannot be turned off"):
            grpcpool.Pool(**{name: math.inf})


@pytest.mark.parametrize("row", rows_of("bool"), ids=lambda row: row[0])
def test_bools_take_only_bools(row: Tuple[Any, ...]) -> None:
    name = row[0]
    grpcpool.Pool(**{name: True}).close()
    for wrong in (1, 0, "true"):
        with pytest.raises(TypeError, match=name):
            grpcpool.Pool(**{name: wrong})


def test_pem_settings_take_bytes_or_pem_text(pem: Pem) -> None:
    grpcpool.Pool(tls_ca_pem=pem.cert.decode()).close()
    grpcpool.Pool(tls_ca_pem=bytearray(pem.cert)).close()
    grpcpool.Pool(tls_client_cert_pem=pem.cert.decode(), tls_client_key_pem=pem.key.decode()).close()
    # A str is the PEM itself, never a path (grpcpool reads files through tls_ca_file).
    with pytest.raises(ValueError, match="tls_ca_pem takes PEM text"):
        grpcpool.Pool(tls_ca_pem=str(pem.cert_file))
    with pytest.raises(TypeError, match="tls_ca_pem"):
        grpcpool.Pool(tls_ca_pem=123)  # type: ignore[arg-type]
    # A certificate needs its key.
    with pytest.raises(ValueError, match="TLS"):
        grpcpool.Pool(tls_client_cert_pem=pem.cert)


def test_text_settings_take_str() -> None:
    grpcpool.Pool(tls_server_name="example.com").close()
    with pytest.raises(TypeError, match="tls_server_name"):
        grpcpool.Pool(tls_server_name=b"example.com")  # type: ignore[typeddict-item]


def test_file_conveniences(pem: Pem) -> None:
    grpcpool.Pool(tls_ca_file=pem.cert_file).close()
    grpcpool.Pool(tls_ca_file=str(pem.cert_file)).close()
    grpcpool.Pool(tls_client_cert=pem.cert_file, tls_client_key=str(pem.key_file)).close()
    grpcpool.Pool(tls_client_cert=pem.cert, tls_client_key=pem.key).close()
    with pytest.raises(ValueError, match="not both"):
        grpcpool.Pool(tls_client_cert_pem=pem.cert, tls_client_cert=pem.cert_file, tls_client_key=pem.key)


def test_unknown_settings_are_type_errors_that_name_them() -> None:
    with pytest.raises(TypeError, match="'max_connection'"):
        grpcpool.Pool(max_connection=4)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="'bogus'"):
        grpcpool.aio.Pool(bogus=1)  # type: ignore[call-arg]


def test_none_keeps_the_default() -> None:
    grpcpool.Pool(**{name: None for name in NAMES}).close()


def test_backoff_settings() -> None:
    grpcpool.Pool(backoff_initial=0.05, backoff_max=1, backoff_multiplier=1, backoff_jitter=0).close()
    with pytest.raises(ValueError, match="backoff"):
        grpcpool.Pool(backoff_multiplier=0.5)
    with pytest.raises(ValueError, match="backoff"):
        grpcpool.Pool(backoff_jitter=1.0)
    with pytest.raises(ValueError, match="backoff"):
        grpcpool.Pool(backoff_initial=2.0, backoff_max=1.0)


def test_settings_out_of_range_name_the_setting() -> None:
    with pytest.raises(ValueError, match="streams_per_connection"):
        grpcpool.Pool(streams_per_connection=1 << 40)
    with pytest.raises(ValueError, match="worker_threads"):
        grpcpool.Pool(worker_threads=100_000)
    with pytest.raises(ValueError, match="connect_timeout"):
        grpcpool.Pool(connect_timeout=0)
