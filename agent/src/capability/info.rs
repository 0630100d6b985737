//! `info`: the operating system, machine and network facts of [`crate::sysinfo`]. Under `info`.

use ponte_e2e::app::{Capability, Transfer};
use ponte_session::SecureStream;

use super::{Context, Handler};
use crate::frontend::{Activity, Kind};
use crate::i18n::Tr;
use crate::t;

/// A system information request.
pub struct Info;

impl Handler for Info {
    const GRANT: Capability = Capability::Info;

    fn describe(&self, tr: &Tr) -> String {
        t!(tr, "request-info")
    }

    async fn run(self, stream: &mut SecureStream, ctx: &Context) -> anyhow::Result<Activity> {
        let facts = tokio::task::spawn_blocking(crate::sysinfo::collect).await?;
        let facts = facts.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        stream.send.send(&Transfer::Info(facts)).await?;
        Ok(Activity {
            kind: Kind::Info,
            text: t!(ctx.tr(), "info-read"),
        })
    }
}
