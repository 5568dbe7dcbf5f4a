//! The operations that make and change configs, call options and pools, and acquire and
//! release leases: each checks its result against what the core says (the same settings
//! applied to a core `Config`, `Pool::new` on it, `parse_call_option`).

use std::ffi::{c_char, CString};
use std::ptr;
use std::time::Duration;

use grpcpool::grpcpool_result::*;
use grpcpool::*;
use grpcpool_core::{
    parse_call_option, setting, CallOptionValue, Compression, Config, Metadata, Pool, SettingValue,
    SETTINGS,
};

use super::args::{c_ptr, c_string, code_of, tame, target_text, text_error};
use super::checks::{check_json, expect};
use super::input::{ConfigOp, Handle, Key, OptionName, OptionsOp, PoolOp, SettingName};
use super::peers::Server;
use super::world::{ConfigEntry, Is, Live, OptionsEntry, PoolEntry, World};
use super::{CLEAN_KEYS, KEYS};

impl World {
    /// `grpcpool_config_*`: each result as `Config::set_text` (and the like) predicts.
    ///
    /// # Safety
    /// The world's pointers are live.
    pub(super) unsafe fn config(&mut self, op: &ConfigOp) {
        // SAFETY (every call below): pointers come from the world (live) or are NULL, strings
        // are NUL-terminated and outlive the call, out-parameters point to locals.
        unsafe {
            match op {
                ConfigOp::New => {
                    let ptr = grpcpool_config_new();
                    assert!(!ptr.is_null(), "grpcpool_config_new gave NULL");
                    self.configs.push(ConfigEntry {
                        ptr,
                        shadow: Config::default(),
                        changed: false,
                    });
                }
                ConfigOp::Set {
                    config,
                    name,
                    value,
                } => {
                    let name = match name {
                        SettingName::Table(index) => Some(
                            CString::new(SETTINGS[usize::from(*index) % SETTINGS.len()].name)
                                .expect("no NUL"),
                        ),
                        SettingName::Text(text) => c_string(text),
                    };
                    let value = c_string(value);
                    let texts = (
                        name.as_ref().map(|n| n.to_str()),
                        value.as_ref().map(|v| v.to_str()),
                    );
                    // Settings that would start many threads or connections per pool.
                    if let (Some(Ok(name)), Some(Ok(value))) = texts {
                        if matches!(name, "worker_threads" | "min_connections_per_target") {
                            let many = setting(name).ok().and_then(|s| s.parse(value).ok());
                            if !matches!(many, Some(SettingValue::Integer(n)) if n <= 2) {
                                return;
                            }
                        }
                    }
                    let index = config.and_then(|index| Self::pick(&self.configs, index));
                    let ptr = index.map_or(ptr::null_mut(), |index| self.configs[index].ptr);
                    let rc = grpcpool_config_set(ptr, c_ptr(&name), c_ptr(&value));
                    let expected = match (index, texts) {
                        (None, _) => GRPCPOOL_NULL_ARGUMENT,
                        (Some(index), (Some(Ok(name)), Some(Ok(value)))) => {
                            let entry = &mut self.configs[index];
                            match entry.shadow.set_text(name, value) {
                                Ok(()) => {
                                    entry.changed = true;
                                    GRPCPOOL_OK
                                }
                                Err(error) => code_of(error.kind()),
                            }
                        }
                        (Some(_), _) => text_error(&[&name, &value]),
                    };
                    expect(rc, &[expected], "grpcpool_config_set");
                }
                ConfigOp::SetBackoff {
                    config,
                    initial_ms,
                    multiplier,
                    jitter,
                    max_ms,
                } => {
                    let index = config.and_then(|index| Self::pick(&self.configs, index));
                    let ptr = index.map_or(ptr::null_mut(), |index| self.configs[index].ptr);
                    let rc = grpcpool_config_set_backoff(
                        ptr,
                        *initial_ms,
                        *multiplier,
                        *jitter,
                        *max_ms,
                    );
                    let expected = match index {
                        None => GRPCPOOL_NULL_ARGUMENT,
                        Some(index) => {
                            let entry = &mut self.configs[index];
                            let mut changed = entry.shadow.clone();
                            let ms = |ms: u32| {
                                SettingValue::Duration(Duration::from_millis(u64::from(ms)))
                            };
                            let applied = changed
                                .set("backoff_initial", ms(*initial_ms))
                                .and_then(|()| {
                                    changed.set(
                                        "backoff_multiplier",
                                        SettingValue::Number(*multiplier),
                                    )
                                })
                                .and_then(|()| {
                                    changed.set("backoff_jitter", SettingValue::Number(*jitter))
                                })
                                .and_then(|()| changed.set("backoff_max", ms(*max_ms)));
                            match applied {
                                Ok(()) => {
                                    entry.shadow = changed;
                                    entry.changed = true;
                                    GRPCPOOL_OK
                                }
                                Err(error) => code_of(error.kind()),
                            }
                        }
                    };
                    expect(rc, &[expected], "grpcpool_config_set_backoff");
                }
                ConfigOp::SetTlsCa { config, pem } => {
                    let index = config.and_then(|index| Self::pick(&self.configs, index));
                    let ptr = index.map_or(ptr::null_mut(), |index| self.configs[index].ptr);
                    let pem: Vec<u8> = pem.iter().copied().take(256).collect();
                    let rc = grpcpool_config_set_tls_ca_pem(
                        ptr,
                        if pem.is_empty() {
                            ptr::null()
                        } else {
                            pem.as_ptr()
                        },
                        pem.len(),
                    );
                    let expected = match index {
                        None => GRPCPOOL_NULL_ARGUMENT,
                        Some(index) => {
                            self.configs[index].shadow.tls.ca_pem = Some(pem);
                            self.configs[index].changed = true;
                            GRPCPOOL_OK
                        }
                    };
                    expect(rc, &[expected], "grpcpool_config_set_tls_ca_pem");
                }
                ConfigOp::SetServerName { config, name } => {
                    let index = config.and_then(|index| Self::pick(&self.configs, index));
                    let ptr = index.map_or(ptr::null_mut(), |index| self.configs[index].ptr);
                    let name = c_string(name);
                    let rc = grpcpool_config_set_tls_server_name(ptr, c_ptr(&name));
                    let expected = match (index, name.as_ref().map(|name| name.to_str())) {
                        (None, _) | (_, None) => GRPCPOOL_NULL_ARGUMENT,
                        (_, Some(Err(_))) => GRPCPOOL_INVALID_ARGUMENT,
                        (Some(index), Some(Ok(name))) => {
                            self.configs[index].shadow.tls.server_name_override =
                                Some(name.to_owned());
                            self.configs[index].changed = true;
                            GRPCPOOL_OK
                        }
                    };
                    expect(rc, &[expected], "grpcpool_config_set_tls_server_name");
                }
                ConfigOp::Free { config } => {
                    match config.and_then(|index| Self::pick(&self.configs, index)) {
                        Some(index) => grpcpool_config_free(self.configs.swap_remove(index).ptr),
                        None => grpcpool_config_free(ptr::null_mut()),
                    }
                }
            }
        }
    }

    /// `grpcpool_call_options_*`: each result as `parse_call_option` (and the like) predicts.
    ///
    /// # Safety
    /// The world's pointers are live.
    pub(super) unsafe fn options_op(&mut self, op: &OptionsOp) {
        // SAFETY (every call below): pointers come from the world (live) or are NULL, strings
        // are NUL-terminated and outlive the call, out-parameters point to locals.
        unsafe {
            match op {
                OptionsOp::New => {
                    let ptr = grpcpool_call_options_new();
                    assert!(!ptr.is_null(), "grpcpool_call_options_new gave NULL");
                    self.options.push(OptionsEntry {
                        ptr,
                        timeout: None,
                        metadata: Metadata::new(),
                        clean: true,
                    });
                }
                OptionsOp::Timeout { options, ms } => {
                    let index = options.and_then(|index| Self::pick(&self.options, index));
                    let ptr = index.map_or(ptr::null_mut(), |index| self.options[index].ptr);
                    let ms = ms.plain();
                    let rc = grpcpool_call_options_set_timeout_ms(ptr, ms);
                    match index {
                        None => expect(rc, &[GRPCPOOL_NULL_ARGUMENT], "set_timeout_ms(NULL)"),
                        Some(index) => {
                            expect(rc, &[GRPCPOOL_OK], "set_timeout_ms");
                            self.options[index].timeout = (ms != GRPCPOOL_NO_TIMEOUT)
                                .then(|| Duration::from_millis(u64::from(ms)));
                        }
                    }
                }
                OptionsOp::Set {
                    options,
                    name,
                    value,
                } => {
                    let index = options.and_then(|index| Self::pick(&self.options, index));
                    let ptr = index.map_or(ptr::null_mut(), |index| self.options[index].ptr);
                    let name = match name {
                        OptionName::Timeout => Some(c"timeout".to_owned()),
                        OptionName::WaitForReady => Some(c"wait_for_ready".to_owned()),
                        OptionName::Compression => Some(c"compression".to_owned()),
                        OptionName::Text(text) => c_string(text),
                    };
                    let value = c_string(value);
                    let rc = grpcpool_call_options_set(ptr, c_ptr(&name), c_ptr(&value));
                    let texts = (
                        name.as_ref().map(|n| n.to_str()),
                        value.as_ref().map(|v| v.to_str()),
                    );
                    let expected = match (index, texts) {
                        (None, _) => GRPCPOOL_NULL_ARGUMENT,
                        (Some(index), (Some(Ok(name)), Some(Ok(value)))) => {
                            match parse_call_option(name, value) {
                                Ok(parsed) => {
                                    let entry = &mut self.options[index];
                                    match parsed {
                                        CallOptionValue::Timeout(timeout) => {
                                            entry.timeout = Some(timeout)
                                        }
                                        // Neither changes what a call on a healthy
                                        // server ends with.
                                        CallOptionValue::WaitForReady(_)
                                        | CallOptionValue::Compression(_) => {}
                                    }
                                    GRPCPOOL_OK
                                }
                                Err(error) => code_of(error.kind()),
                            }
                        }
                        (Some(_), _) => text_error(&[&name, &value]),
                    };
                    expect(rc, &[expected], "grpcpool_call_options_set");
                }
                OptionsOp::WaitForReady { options, wait } => {
                    let index = options.and_then(|index| Self::pick(&self.options, index));
                    let ptr = index.map_or(ptr::null_mut(), |index| self.options[index].ptr);
                    let rc = grpcpool_call_options_set_wait_for_ready(ptr, *wait);
                    let expected = if index.is_some() {
                        GRPCPOOL_OK
                    } else {
                        GRPCPOOL_NULL_ARGUMENT
                    };
                    expect(rc, &[expected], "grpcpool_call_options_set_wait_for_ready");
                }
                OptionsOp::Compression { options, name } => {
                    let index = options.and_then(|index| Self::pick(&self.options, index));
                    let ptr = index.map_or(ptr::null_mut(), |index| self.options[index].ptr);
                    let name = c_string(name);
                    let rc = grpcpool_call_options_set_compression(ptr, c_ptr(&name));
                    let expected = match (index, name.as_ref().map(|name| name.to_str())) {
                        (None, _) | (_, None) => GRPCPOOL_NULL_ARGUMENT,
                        (_, Some(Err(_))) => GRPCPOOL_INVALID_ARGUMENT,
                        (Some(_), Some(Ok(name))) => match Compression::from_name(name) {
                            Ok(_) => GRPCPOOL_OK,
                            Err(error) => code_of(error.kind()),
                        },
                    };
                    expect(rc, &[expected], "grpcpool_call_options_set_compression");
                }
                OptionsOp::Metadata { options, entry } => {
                    let index = options.and_then(|index| Self::pick(&self.options, index));
                    let ptr = index.map_or(ptr::null_mut(), |index| self.options[index].ptr);
                    let key = match &entry.key {
                        Key::Known(known) => Some(
                            CString::new(KEYS[usize::from(*known) % KEYS.len()]).expect("no NUL"),
                        ),
                        Key::Text(text) => c_string(text),
                    };
                    let value = key.as_ref().map_or_else(
                        || entry.value.clone(),
                        |key| tame(key.as_bytes(), &entry.value),
                    );
                    let rc = grpcpool_call_options_add_metadata(
                        ptr,
                        c_ptr(&key),
                        if value.is_empty() {
                            ptr::null()
                        } else {
                            value.as_ptr()
                        },
                        value.len(),
                    );
                    let expected = match (index, key.as_ref().map(|key| key.to_str())) {
                        (None, _) | (_, None) => GRPCPOOL_NULL_ARGUMENT,
                        (_, Some(Err(_))) => GRPCPOOL_INVALID_ARGUMENT,
                        (Some(index), Some(Ok(key))) => {
                            let options = &mut self.options[index];
                            if key.ends_with("-bin") {
                                options.metadata.insert_binary(key, value.clone());
                                options.clean &= CLEAN_KEYS.contains(&key);
                                GRPCPOOL_OK
                            } else {
                                match String::from_utf8(value.clone()) {
                                    Ok(text) => {
                                        options.metadata.insert_ascii(key, text);
                                        options.clean &= CLEAN_KEYS.contains(&key);
                                        GRPCPOOL_OK
                                    }
                                    Err(_) => GRPCPOOL_INVALID_METADATA,
                                }
                            }
                        }
                    };
                    expect(rc, &[expected], "grpcpool_call_options_add_metadata");
                }
                OptionsOp::Free { options } => match options
                    .and_then(|index| Self::pick(&self.options, index))
                {
                    Some(index) => grpcpool_call_options_free(self.options.swap_remove(index).ptr),
                    None => grpcpool_call_options_free(ptr::null_mut()),
                },
            }
        }
    }

    /// Pools and leases: `grpcpool_pool_new` as `Pool::new` predicts, acquire and release.
    ///
    /// # Safety
    /// The world's pointers are live.
    pub(super) unsafe fn pool_op(&mut self, op: &PoolOp, server: &Server) {
        // SAFETY (every call below): pointers come from the world (live) or are NULL, strings
        // are NUL-terminated and outlive the call, out-parameters point to locals.
        unsafe {
            match op {
                PoolOp::New { config, null_out } => {
                    let index = config.and_then(|index| Self::pick(&self.configs, index));
                    let (ptr, shadow, default) = match index {
                        Some(index) => {
                            let entry = &self.configs[index];
                            (entry.ptr.cast_const(), entry.shadow.clone(), !entry.changed)
                        }
                        None => (ptr::null(), Config::default(), true),
                    };
                    let expected = match Pool::new(shadow) {
                        Ok(_) => GRPCPOOL_OK,
                        Err(error) => code_of(error.kind()),
                    };
                    let mut pool = ptr::null_mut();
                    if *null_out {
                        expect(
                            grpcpool_pool_new(ptr, ptr::null_mut()),
                            &[GRPCPOOL_NULL_ARGUMENT],
                            "pool_new(NULL out)",
                        );
                        return;
                    }
                    let rc = grpcpool_pool_new(ptr, &mut pool);
                    expect(rc, &[expected], "grpcpool_pool_new, against Pool::new");
                    if rc == GRPCPOOL_OK {
                        assert!(!pool.is_null(), "grpcpool_pool_new gave NULL with OK");
                        self.pools.push(PoolEntry {
                            ptr: pool,
                            default,
                            closed: false,
                            freed: false,
                        });
                    } else {
                        assert!(pool.is_null(), "an out-parameter was written on failure");
                    }
                }
                PoolOp::Shutdown {
                    pool,
                    grace,
                    null_out,
                } => {
                    let pool = self.pool(*pool);
                    let mut left = u64::MAX;
                    let out = if *null_out {
                        ptr::null_mut()
                    } else {
                        &mut left as *mut u64
                    };
                    let rc =
                        grpcpool_pool_shutdown(self.pool_ptr(pool), grace.bounded().min(5), out);
                    match pool {
                        None => expect(rc, &[GRPCPOOL_NULL_ARGUMENT], "shutdown(NULL)"),
                        Some(index) => {
                            expect(rc, &[GRPCPOOL_OK], "grpcpool_pool_shutdown");
                            assert!(*null_out || left != u64::MAX, "still_in_use not written");
                            self.pools[index].closed = true;
                        }
                    }
                }
                PoolOp::Free { pool } => match self.pool(*pool) {
                    Some(index) => self.free_pool(index),
                    None => grpcpool_pool_free(ptr::null_mut()),
                },
                PoolOp::Json {
                    pool,
                    leaks,
                    null_out,
                } => {
                    let pool = self.pool(*pool);
                    let mut json: *mut c_char = ptr::null_mut();
                    let out = if *null_out {
                        ptr::null_mut()
                    } else {
                        &mut json as *mut *mut c_char
                    };
                    let rc = if *leaks {
                        grpcpool_pool_leaks_json(self.pool_ptr(pool), out)
                    } else {
                        grpcpool_pool_stats_json(self.pool_ptr(pool), out)
                    };
                    let expected = if pool.is_none() || *null_out {
                        GRPCPOOL_NULL_ARGUMENT
                    } else {
                        GRPCPOOL_OK
                    };
                    expect(rc, &[expected], "pool stats/leaks JSON");
                    if rc == GRPCPOOL_OK {
                        check_json(json);
                    }
                }
                PoolOp::Acquire {
                    pool,
                    target,
                    timeout,
                    site,
                    null_out,
                } => {
                    let pool = self.pool(*pool);
                    let Some((target, target_ok)) = target_text(target, server) else {
                        return;
                    };
                    let site = site.as_ref().map(c_string);
                    let mut lease = 0;
                    let out = if *null_out {
                        ptr::null_mut()
                    } else {
                        &mut lease as *mut u64
                    };
                    let rc = match &site {
                        None => grpcpool_acquire(
                            self.pool_ptr(pool),
                            c_ptr(&target),
                            timeout.bounded(),
                            out,
                        ),
                        Some(site) => grpcpool_acquire_at(
                            self.pool_ptr(pool),
                            c_ptr(&target),
                            timeout.bounded(),
                            c_ptr(site),
                            out,
                        ),
                    };
                    let allowed: Vec<grpcpool_result> = match pool {
                        _ if pool.is_none() || *null_out => vec![GRPCPOOL_NULL_ARGUMENT],
                        Some(index) if self.pools[index].closed => vec![
                            GRPCPOOL_POOL_CLOSED,
                            target_ok.unwrap_or(GRPCPOOL_POOL_CLOSED),
                        ],
                        _ => match target_ok {
                            Some(error) => vec![error],
                            None => {
                                vec![GRPCPOOL_OK, GRPCPOOL_UNAVAILABLE, GRPCPOOL_ACQUIRE_TIMEOUT]
                            }
                        },
                    };
                    expect(rc, &allowed, "grpcpool_acquire");
                    if rc == GRPCPOOL_OK {
                        let pool = pool.expect("an acquire on NULL cannot succeed");
                        assert!(
                            self.lease(Handle::Forged(lease)).1 == Is::Invalid,
                            "a new lease handle is already live"
                        );
                        self.leases.push(Live {
                            handle: lease,
                            pool,
                        });
                    } else {
                        assert_eq!(lease, 0, "an out-parameter was written on failure");
                    }
                }
                PoolOp::Release { lease } => {
                    let (handle, is) = self.lease(*lease);
                    let rc = grpcpool_release(handle);
                    match is {
                        Is::Live(index) => {
                            expect(rc, &[GRPCPOOL_OK], "release of a live lease");
                            let released = self.leases.swap_remove(index);
                            self.stale_leases.push(released.handle);
                        }
                        _ => expect(rc, &[GRPCPOOL_INVALID_HANDLE], "release of a dead handle"),
                    }
                }
            }
        }
    }
}
