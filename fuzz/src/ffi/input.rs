//! What an input of the C-ABI fuzzer is: a list of operations, each naming what it works on
//! by index into what the input has made so far (or NULL, stale, forged), decoded from the
//! fuzzer's bytes by `arbitrary`.

use arbitrary::Arbitrary;
use grpcpool::GRPCPOOL_NO_TIMEOUT;

use super::BOUND_MS;

/// A C string argument: NULL, or bytes up to their first NUL (maybe not UTF-8).
#[derive(Arbitrary, Debug, Clone)]
pub enum Str {
    Null,
    Text(Vec<u8>),
}

/// A timeout. Where a call may wait, `None` (no deadline) and `Long` are bounded.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Ms {
    Zero,
    One,
    Five,
    Twenty,
    Hundred,
    Long,
    None,
}

/// A handle argument.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Handle {
    Live(u8),
    Stale(u8),
    Forged(u64),
    Flipped { index: u8, bit: u8 },
    Zero,
    OtherKind(u8),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Method {
    Unary,
    Bidi,
    ServerStream,
    ClientStream,
    Unimplemented,
    Text(Str),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Key {
    Known(u8),
    Text(Str),
}

#[derive(Arbitrary, Debug, Clone)]
pub struct Entry {
    pub key: Key,
    pub value: Vec<u8>,
}

#[derive(Arbitrary, Debug, Clone)]
pub enum TargetChoice {
    Server,
    /// Accepts each connection and closes it at once.
    HangUp,
    Unreachable,
    MissingSocket,
    Text(Str),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum SettingName {
    Table(u8),
    Text(Str),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum OptionName {
    Timeout,
    WaitForReady,
    Compression,
    Text(Str),
}

/// Which form of a call: the short one (metadata and a timeout), or `_with` call options
/// (NULL or one of the input's options objects).
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Form {
    Plain,
    WithNull,
    With(u8),
}

#[derive(Arbitrary, Debug, Clone)]
pub struct CallArgs {
    pub method: Method,
    pub request: Vec<u8>,
    pub metadata: Vec<Entry>,
    pub timeout: Ms,
    pub form: Form,
    pub null_out: bool,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct AsyncArgs {
    pub null_callback: bool,
    pub null_out_call: bool,
    /// The callback tries a blocking function.
    pub probe: bool,
    /// Cancel the call right after it starts.
    pub cancel: bool,
}

/// One operation of an input.
#[derive(Arbitrary, Debug, Clone)]
pub enum Op {
    /// On configs.
    Config(ConfigOp),
    /// On call options.
    Options(OptionsOp),
    /// On pools and leases.
    Pool(PoolOp),
    /// Unary calls.
    Call(CallOp),
    /// On streams.
    Stream(StreamOp),
    /// The rest.
    Misc(MiscOp),
}

/// `grpcpool_config_*`.
#[derive(Arbitrary, Debug, Clone)]
pub enum ConfigOp {
    New,
    Set {
        config: Option<u8>,
        name: SettingName,
        value: Str,
    },
    SetBackoff {
        config: Option<u8>,
        initial_ms: u32,
        multiplier: f64,
        jitter: f64,
        max_ms: u32,
    },
    SetTlsCa {
        config: Option<u8>,
        pem: Vec<u8>,
    },
    SetServerName {
        config: Option<u8>,
        name: Str,
    },
    Free {
        config: Option<u8>,
    },
}

/// `grpcpool_call_options_*`.
#[derive(Arbitrary, Debug, Clone)]
pub enum OptionsOp {
    New,
    Timeout {
        options: Option<u8>,
        ms: Ms,
    },
    Set {
        options: Option<u8>,
        name: OptionName,
        value: Str,
    },
    WaitForReady {
        options: Option<u8>,
        wait: bool,
    },
    Compression {
        options: Option<u8>,
        name: Str,
    },
    Metadata {
        options: Option<u8>,
        entry: Entry,
    },
    Free {
        options: Option<u8>,
    },
}

/// Pools and leases.
#[derive(Arbitrary, Debug, Clone)]
pub enum PoolOp {
    New {
        config: Option<u8>,
        null_out: bool,
    },
    Shutdown {
        pool: Option<u8>,
        grace: Ms,
        null_out: bool,
    },
    Free {
        pool: Option<u8>,
    },
    Json {
        pool: Option<u8>,
        leaks: bool,
        null_out: bool,
    },
    Acquire {
        pool: Option<u8>,
        target: TargetChoice,
        timeout: Ms,
        site: Option<Str>,
        null_out: bool,
    },
    Release {
        lease: Handle,
    },
}

/// Unary calls.
#[derive(Arbitrary, Debug, Clone)]
pub enum CallOp {
    OnLease {
        lease: Handle,
        call: CallArgs,
    },
    OneShot {
        pool: Option<u8>,
        target: TargetChoice,
        call: CallArgs,
    },
    OnLeaseAsync {
        lease: Handle,
        call: CallArgs,
        on_done: AsyncArgs,
    },
    OneShotAsync {
        pool: Option<u8>,
        target: TargetChoice,
        call: CallArgs,
        on_done: AsyncArgs,
    },
    Cancel {
        call: Handle,
    },
}

/// Streams.
#[derive(Arbitrary, Debug, Clone)]
pub enum StreamOp {
    OpenOnLease {
        lease: Handle,
        call: CallArgs,
    },
    Open {
        pool: Option<u8>,
        target: TargetChoice,
        call: CallArgs,
    },
    Send {
        stream: Handle,
        message: Vec<u8>,
        asynchronous: bool,
    },
    CloseSend {
        stream: Handle,
    },
    Recv {
        stream: Handle,
        asynchronous: bool,
        null_out: bool,
    },
    Headers {
        stream: Handle,
        null_out: bool,
    },
    Cancel {
        stream: Handle,
    },
    Finish {
        stream: Handle,
        asynchronous: bool,
        null_out: bool,
    },
    Free {
        stream: Handle,
    },
}

/// Everything else.
#[derive(Arbitrary, Debug, Clone)]
pub enum MiscOp {
    ResultName(i32),
    Version,
    SettingsJson { null_out: bool },
    LogCallback { on: bool, level: i32 },
    NullAccessors,
}

impl Ms {
    /// The timeout where the call cannot wait long whatever it is given.
    pub fn plain(self) -> u32 {
        match self {
            Ms::Zero => 0,
            Ms::One => 1,
            Ms::Five => 5,
            Ms::Twenty => 20,
            Ms::Hundred => 100,
            Ms::Long => 5_000,
            Ms::None => GRPCPOOL_NO_TIMEOUT,
        }
    }

    /// The timeout for a call that may wait: at most [`BOUND_MS`].
    pub fn bounded(self) -> u32 {
        self.plain().min(BOUND_MS)
    }
}
