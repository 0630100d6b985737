//! Tests only (the `test-tap` feature): a hook on the bytes the relay forwards. A production
//! build has no such hook, so its forwarding path has no branch for one.

use crate::forward::Direction;

/// Tests only: a hook on every stream direction the relay forwards, to prove what a relay can
/// see ([`Tap::observe`]) or to play a relay that attacks the path — one that alters, drops,
/// repeats or cuts what it forwards — and show that the two ends detect it. Settable only from
/// code (never from the command line or a config file), and only with the `test-tap` feature.
#[derive(Clone)]
pub struct Tap(pub std::sync::Arc<TapFn>);

/// What a [`Tap`] is: called once for each forwarded stream direction as its copy starts, it
/// returns the filter every chunk of that direction then goes through, in order.
pub type TapFn = dyn Fn(Direction) -> Box<TapFilter> + Send + Sync;

/// The filter of one forwarded stream direction (see [`TapFn`]).
pub type TapFilter = dyn FnMut(&[u8]) -> Tapped + Send;

/// What a [`TapFilter`] makes of a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tapped {
    /// Forward the chunk unchanged.
    Pass,
    /// Forward these bytes instead (nothing, when empty).
    Replace(Vec<u8>),
    /// Forward these bytes, then end the stream with a FIN as if its sender had finished it,
    /// and stop reading from the sender.
    Finish(Vec<u8>),
}

impl Tap {
    /// A tap that only looks: `observer` sees every forwarded chunk, which goes on unchanged.
    pub fn observe(observer: impl Fn(&[u8]) + Send + Sync + 'static) -> Tap {
        let observer = std::sync::Arc::new(observer);
        Tap(std::sync::Arc::new(move |_| {
            let observer = observer.clone();
            Box::new(move |bytes: &[u8]| {
                observer(bytes);
                Tapped::Pass
            })
        }))
    }
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tap")
    }
}

/// What goes on of `chunk` through `filter` (if any), and whether the stream then ends.
pub(crate) fn apply<B: From<Vec<u8>> + AsRef<[u8]>>(
    filter: Option<&mut Box<TapFilter>>,
    chunk: B,
) -> (B, bool) {
    match filter.map(|filter| filter(chunk.as_ref())) {
        None | Some(Tapped::Pass) => (chunk, false),
        Some(Tapped::Replace(bytes)) => (bytes.into(), false),
        Some(Tapped::Finish(bytes)) => (bytes.into(), true),
    }
}
