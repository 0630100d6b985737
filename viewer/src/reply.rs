//! What the customer's computer answers to each request. On the wire every request's stream
//! carries the same message type, [`Transfer`]; here each request gets a type of its own for
//! its answer, and which messages answer which request is decided in this one place.
//!
//! A message of another kind comes from a broken or hostile peer: it fails the request with
//! [`ViewerError::Unexpected`], naming what was expected. The customer's computer may fail
//! any request ([`Transfer::Failed`]).

use ponte_e2e::app::Transfer;
use ponte_wire::text::PeerText;

use crate::client::ViewerError;

/// The answer to one kind of request, decoded from a [`Transfer`].
pub(crate) trait Reply: Sized {
    /// What the request waits for, in the error when something else came.
    const EXPECTED: &'static str;

    /// This answer, if `message` is one.
    fn from_message(message: Transfer) -> Option<Self>;
}

/// Decodes a message on the stream of a request that waits for an `R`.
pub(crate) fn decode<R: Reply>(message: Transfer) -> Result<R, ViewerError> {
    match message {
        Transfer::Failed(reason) => Err(ViewerError::Failed(reason)),
        message => R::from_message(message).ok_or(ViewerError::Unexpected {
            expected: R::EXPECTED,
        }),
    }
}

/// The output of a terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminalOutput {
    /// Bytes the terminal wrote (a terminal's own escapes included: shown by a terminal).
    Output(Vec<u8>),
    /// The shell exited with this status (`None`: killed by a signal).
    Exit(Option<i32>),
}

impl Reply for TerminalOutput {
    const EXPECTED: &'static str = "the terminal's output or its end";

    fn from_message(message: Transfer) -> Option<TerminalOutput> {
        match message {
            // A terminal has one output: standard error is in it.
            Transfer::Output { data, .. } => Some(TerminalOutput::Output(data)),
            Transfer::Exit(code) => Some(TerminalOutput::Exit(code)),
            _ => None,
        }
    }
}

/// What a command sends while it runs, and last its exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CommandOutput {
    /// Output (`stderr`: on standard error).
    Output {
        /// Written to standard error.
        stderr: bool,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The command exited with this status (`None`: killed by a signal).
    Exit(Option<i32>),
}

impl Reply for CommandOutput {
    const EXPECTED: &'static str = "the command's output or its exit status";

    fn from_message(message: Transfer) -> Option<CommandOutput> {
        match message {
            Transfer::Output { stderr, data } => Some(CommandOutput::Output { stderr, data }),
            Transfer::Exit(code) => Some(CommandOutput::Exit(code)),
            _ => None,
        }
    }
}

/// The customer's system information, as key/value lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Facts(pub(crate) Vec<(PeerText, PeerText)>);

impl Reply for Facts {
    const EXPECTED: &'static str = "system information";

    fn from_message(message: Transfer) -> Option<Facts> {
        match message {
            Transfer::Info(facts) => Some(Facts(facts)),
            _ => None,
        }
    }
}

/// The text on the customer's clipboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClipboardText(pub(crate) PeerText);

impl Reply for ClipboardText {
    const EXPECTED: &'static str = "the clipboard's text";

    fn from_message(message: Transfer) -> Option<ClipboardText> {
        match message {
            Transfer::Clipboard(text) => Some(ClipboardText(text)),
            _ => None,
        }
    }
}

/// Part of a folder listing, or its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Listed {
    /// More entries.
    Entries(Vec<ponte_e2e::app::ListEntry>),
    /// No more.
    Done,
}

impl Reply for Listed {
    const EXPECTED: &'static str = "the folder's entries or their end";

    fn from_message(message: Transfer) -> Option<Listed> {
        match message {
            Transfer::Listing(entries) => Some(Listed::Entries(entries)),
            Transfer::Done => Some(Listed::Done),
            _ => None,
        }
    }
}

/// The request was carried out (the input events were injected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Done;

impl Reply for Done {
    const EXPECTED: &'static str = "the confirmation that it was done";

    fn from_message(message: Transfer) -> Option<Done> {
        matches!(message, Transfer::Done).then_some(Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_request_takes_only_its_own_answers() {
        assert_eq!(decode::<Done>(Transfer::Done).unwrap(), Done);
        assert_eq!(
            decode::<Facts>(Transfer::Info(vec![("os".into(), "x".into())])).unwrap(),
            Facts(vec![("os".into(), "x".into())])
        );
        assert_eq!(
            decode::<CommandOutput>(Transfer::Output {
                stderr: true,
                data: b"e".to_vec()
            })
            .unwrap(),
            CommandOutput::Output {
                stderr: true,
                data: b"e".to_vec()
            }
        );
        assert_eq!(
            decode::<CommandOutput>(Transfer::Exit(Some(3))).unwrap(),
            CommandOutput::Exit(Some(3))
        );
        assert_eq!(
            decode::<TerminalOutput>(Transfer::Output {
                stderr: true,
                data: b"e".to_vec()
            })
            .unwrap(),
            TerminalOutput::Output(b"e".to_vec())
        );
        assert_eq!(
            decode::<TerminalOutput>(Transfer::Exit(None)).unwrap(),
            TerminalOutput::Exit(None)
        );
    }

    /// A hostile agent answering with a message of another kind (or of another request) fails
    /// the request with an error naming what was expected.
    #[test]
    fn an_answer_of_another_kind_is_unexpected() {
        fn unexpected<R: Reply + std::fmt::Debug>(message: Transfer) -> String {
            match decode::<R>(message) {
                Err(e @ ViewerError::Unexpected { expected }) => {
                    assert_eq!(expected, R::EXPECTED);
                    e.to_string()
                }
                other => panic!("{other:?}"),
            }
        }
        let said = unexpected::<Facts>(Transfer::Done);
        assert_eq!(
            said,
            "unexpected message from the customer's computer (expected system information)"
        );
        unexpected::<Done>(Transfer::Info(Vec::new()));
        unexpected::<Done>(Transfer::Exit(Some(0)));
        unexpected::<CommandOutput>(Transfer::Info(Vec::new()));
        unexpected::<CommandOutput>(Transfer::Data(b"x".to_vec()));
        unexpected::<TerminalOutput>(Transfer::Done);
        unexpected::<TerminalOutput>(Transfer::Input(b"x".to_vec()));
    }

    #[test]
    fn any_request_may_fail() {
        let failed = decode::<Done>(Transfer::Failed("the customer is using the mouse".into()));
        assert!(
            matches!(&failed, Err(ViewerError::Failed(reason)) if reason.as_raw() == "the customer is using the mouse"),
            "{failed:?}"
        );
        assert!(matches!(
            decode::<TerminalOutput>(Transfer::Failed("stopped".into())),
            Err(ViewerError::Failed(_))
        ));
    }
}
