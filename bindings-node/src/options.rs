//! Pool settings from JavaScript, read through the core's settings table: the face keeps no
//! list of settings of its own. Each setting is an option named [`Setting::camel_case_name`]
//! (durations in milliseconds, hence the `Ms`), converted by its [`SettingType`] and handed to
//! [`Config::set`]; ranges are the core's to check when the pool is made.

use grpcpool_core::{Config, Setting, SettingType, SettingValue, SETTINGS};
use napi::bindgen_prelude::{
    Buffer, Env, FromNapiValue, JsObjectValue, Object, Uint8ArraySlice, Unknown,
};
use napi::ValueType;
use napi_derive::napi;

use crate::convert::millis;
use crate::failure::Failure;

/// The names `new Pool(options)` takes, one per core setting, in the order of the core's table
/// (the keys of `PoolOptions` in settings.d.ts).
#[napi]
pub fn pool_option_names() -> Vec<String> {
    SETTINGS.iter().map(Setting::camel_case_name).collect()
}

/// Every setting's default by option name, in the units the options take (milliseconds for
/// durations, 0 where 0 turns a setting off), in the order of the core's table. Settings unset
/// by default (the TLS ones) are absent.
#[napi(ts_return_type = "Record<string, number | boolean | string | Buffer>")]
pub fn pool_option_defaults(env: &Env) -> napi::Result<Object<'_>> {
    let mut defaults = Object::new(env)?;
    for setting in SETTINGS {
        let Some(value) = setting.default_value() else {
            continue;
        };
        let name = setting.camel_case_name();
        match value {
            // Every integer setting's max is far below 2^53, so the number is exact.
            SettingValue::Integer(number) => defaults.set(name, number as f64)?,
            SettingValue::Number(number) => defaults.set(name, number)?,
            // Nanoseconds over 1e6: exact for whole milliseconds, unlike seconds times 1000.
            SettingValue::Duration(duration) => {
                defaults.set(name, duration.as_nanos() as f64 / 1e6)?
            }
            SettingValue::Bool(flag) => defaults.set(name, flag)?,
            SettingValue::Text(text) => defaults.set(name, text)?,
            SettingValue::Pem(bytes) => defaults.set(name, Buffer::from(bytes))?,
        }
    }
    Ok(defaults)
}

/// The core configuration an options object describes: the defaults, with each setting the
/// object names set on top. `undefined` (or no object at all) leaves a setting at its default.
pub(crate) fn config_from(options: Option<Unknown<'_>>) -> Result<Config, Failure> {
    let mut config = Config::default();
    let Some(options) = options else {
        return Ok(config);
    };
    match options.get_type().map_err(unreadable)? {
        ValueType::Undefined | ValueType::Null => return Ok(config),
        ValueType::Object => {}
        other => {
            return Err(Failure::invalid(format!(
                "pool options must be an object, not {}",
                describe(other)
            )))
        }
    }
    let object = Object::from_unknown(options).map_err(unreadable)?;
    // Enumerable string keys, inherited ones included: the same keys a property read sees.
    for key in Object::keys(&object).map_err(unreadable)? {
        if key == "targets" {
            target_options_from(&mut config, &object)?;
            continue;
        }
        let setting = SETTINGS
            .iter()
            .find(|setting| setting.camel_case_name() == key)
            .ok_or_else(|| {
                Failure::invalid(format!(
                    "unknown pool options key {key:?}; known keys: {}",
                    pool_option_names().join(", ")
                ))
            })?;
        if let Some(value) = setting_value(&object, &key, setting)? {
            config
                .set(setting.name, value)
                .map_err(Failure::from_error)?;
        }
    }
    Ok(config)
}

/// `targets: { [target]: { option: value } }`: settings of single targets over the pool's,
/// each option named and converted as the pool's own are.
fn target_options_from(config: &mut Config, options: &Object<'_>) -> Result<(), Failure> {
    let targets: Unknown<'_> = options.get_named_property("targets").map_err(unreadable)?;
    match targets.get_type().map_err(unreadable)? {
        ValueType::Undefined => return Ok(()),
        ValueType::Object => {}
        other => {
            return Err(Failure::invalid(format!(
                "targets must be an object of target to options, not {}",
                describe(other)
            )))
        }
    }
    let targets = Object::from_unknown(targets).map_err(unreadable)?;
    for target in Object::keys(&targets).map_err(unreadable)? {
        let own: Unknown<'_> = targets.get_named_property(&target).map_err(unreadable)?;
        if own.get_type().map_err(unreadable)? != ValueType::Object {
            return Err(Failure::invalid(format!(
                "targets[{target:?}] must be an object of options"
            )));
        }
        let own = Object::from_unknown(own).map_err(unreadable)?;
        for key in Object::keys(&own).map_err(unreadable)? {
            let setting = SETTINGS
                .iter()
                .find(|setting| setting.camel_case_name() == key)
                .ok_or_else(|| {
                    Failure::invalid(format!("unknown option {key:?} for target {target:?}"))
                })?;
            if let Some(value) = setting_value(&own, &key, setting)? {
                config
                    .set_for_target(&target, setting.name, value)
                    .map_err(Failure::from_error)?;
            }
        }
    }
    Ok(())
}

/// The value of option `key` for `setting`, converted by the setting's type; `None` for
/// `undefined`.
fn setting_value(
    object: &Object<'_>,
    key: &str,
    setting: &Setting,
) -> Result<Option<SettingValue>, Failure> {
    let value: Unknown<'_> = object.get_named_property(key).map_err(unreadable)?;
    let found = value.get_type().map_err(unreadable)?;
    if found == ValueType::Undefined {
        return Ok(None);
    }
    let wrong = |expected: &str| {
        Failure::invalid(format!("{key} must be {expected}, not {}", describe(found)))
    };
    let value = match setting.kind {
        SettingType::Integer { max } => {
            let number = number(value, found).ok_or_else(|| wrong("a number"))?;
            SettingValue::Integer(whole(key, number, max)?)
        }
        SettingType::Number => {
            let number = number(value, found).ok_or_else(|| wrong("a number"))?;
            if !number.is_finite() {
                return Err(Failure::invalid(format!(
                    "{key} must be a finite number, not {number}"
                )));
            }
            SettingValue::Number(number)
        }
        SettingType::Duration => {
            let number = number(value, found).ok_or_else(|| wrong("a number of milliseconds"))?;
            // Zero stays zero: the core turns off a setting that can be turned off, and
            // refuses it for one that cannot.
            SettingValue::Duration(millis(key, number)?)
        }
        SettingType::Bool => {
            if found != ValueType::Boolean {
                return Err(wrong("a boolean"));
            }
            SettingValue::Bool(bool::from_unknown(value).map_err(unreadable)?)
        }
        SettingType::Pem => match found {
            ValueType::String => SettingValue::Pem(
                String::from_unknown(value)
                    .map_err(unreadable)?
                    .into_bytes(),
            ),
            // Reading it as a Uint8Array refuses any other object (a Buffer is a Uint8Array).
            ValueType::Object => {
                let bytes = Uint8ArraySlice::from_unknown(value)
                    .map_err(|_| wrong("PEM text (a string), a Buffer or a Uint8Array"))?;
                SettingValue::Pem(bytes.to_vec())
            }
            _ => return Err(wrong("PEM text (a string), a Buffer or a Uint8Array")),
        },
        SettingType::Text => {
            if found != ValueType::String {
                return Err(wrong("a string"));
            }
            SettingValue::Text(String::from_unknown(value).map_err(unreadable)?)
        }
        // JSON text as it is, or an object the core reads as JSON.
        SettingType::Json => match found {
            ValueType::String => {
                SettingValue::Text(String::from_unknown(value).map_err(unreadable)?)
            }
            ValueType::Object => SettingValue::Text(
                serde_json::Value::from_unknown(value)
                    .map_err(|_| wrong("JSON text or a plain object"))?
                    .to_string(),
            ),
            _ => return Err(wrong("JSON text or a plain object")),
        },
    };
    Ok(Some(value))
}

/// The number a JavaScript number holds; `None` for any other type.
fn number(value: Unknown<'_>, found: ValueType) -> Option<f64> {
    if found != ValueType::Number {
        return None;
    }
    f64::from_unknown(value).ok()
}

/// A whole number from 0 to `max`.
fn whole(key: &str, value: f64, max: u64) -> Result<u64, Failure> {
    // `max as f64` rounds u64::MAX up, but every setting's max is far below 2^53.
    if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= max as f64 {
        return Ok(value as u64);
    }
    Err(Failure::invalid(format!(
        "{key} must be a whole number from 0 to {max}, not {value}"
    )))
}

/// A JavaScript type as an error message names it.
fn describe(found: ValueType) -> &'static str {
    match found {
        ValueType::Undefined => "undefined",
        ValueType::Null => "null",
        ValueType::Boolean => "a boolean",
        ValueType::Number => "a number",
        ValueType::String => "a string",
        ValueType::Symbol => "a symbol",
        ValueType::Object => "an object",
        ValueType::Function => "a function",
        ValueType::External => "an external",
        // A bigint, among others (napi-rs names the bigint type only with Node-API 6).
        _ => "an unsupported value",
    }
}

/// A value Node-API could not read (a getter that threw, say).
fn unreadable(error: napi::Error) -> Failure {
    Failure::invalid(format!("pool options could not be read: {}", error.reason))
}
