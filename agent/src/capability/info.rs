//! `info`: the operating system, machine and network facts, collected only when the customer
//! granted `info`.

use ponte_e2e::app::{Capability, Transfer};
use ponte_session::SecureStream;
use sysinfo::{Disks, Networks, System};

use super::{Context, Handler};
use crate::frontend::{Activity, Kind};
use crate::i18n::{Tr, t};

/// A system information request.
pub struct Info;

impl Handler for Info {
    const GRANT: Capability = Capability::Info;

    fn describe(&self, tr: &Tr) -> String {
        t!(tr, "request-info")
    }

    async fn run(self, stream: &mut SecureStream, ctx: &Context) -> anyhow::Result<Activity> {
        let facts = tokio::task::spawn_blocking(collect).await?;
        let facts = facts.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        stream.send.send(&Transfer::Info(facts)).await?;
        Ok(Activity {
            kind: Kind::Info,
            text: t!(ctx.tr(), "info-read"),
        })
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

fn or_unknown<E>(r: Result<String, E>) -> String {
    r.unwrap_or_else(|_| "unknown".into())
}

/// Facts as (name, value) pairs, in a stable order. What cannot be read says "unknown".
pub fn collect() -> Vec<(String, String)> {
    let mut facts = vec![
        ("os".to_owned(), or_unknown(System::long_os_version())),
        ("kernel".to_owned(), or_unknown(System::kernel_version())),
        ("hostname".to_owned(), or_unknown(System::host_name())),
        (
            "user".to_owned(),
            or_unknown(
                std::env::var("USER")
                    .or_else(|_| std::env::var("LOGNAME"))
                    .or_else(|_| std::env::var("USERNAME")),
            ),
        ),
    ];
    if let Ok(mut sys) = System::new() {
        sys.refresh_memory();
        sys.refresh_cpu_all();
        let brand = sys
            .cpus()
            .first()
            .map(|c| c.brand().trim().to_owned())
            .unwrap_or_default();
        facts.push(("cpu".to_owned(), format!("{} × {brand}", sys.cpus().len())));
        facts.push((
            "memory".to_owned(),
            format!("{} used of {}", gib(sys.used_memory()), gib(sys.total_memory())),
        ));
    }
    let uptime = System::uptime().map_or_else(
        |_| "unknown".into(),
        |u| format!("{} h {} min", u / 3600, u / 60 % 60),
    );
    facts.push(("uptime".to_owned(), uptime));
    facts.push((
        "agent".to_owned(),
        format!("ponte-agent {}", env!("CARGO_PKG_VERSION")),
    ));
    if let Ok(disks) = Disks::new_with_refreshed_list() {
        for disk in disks.iter() {
            facts.push((
                format!("disk {}", disk.mount_point().display()),
                format!(
                    "{} free of {}",
                    gib(disk.available_space()),
                    gib(disk.total_space())
                ),
            ));
        }
    }
    if let Ok(networks) = Networks::new_with_refreshed_list() {
        for (name, data) in networks.iter() {
            let addrs: Vec<String> = data
                .ip_networks()
                .iter()
                .map(|n| format!("{}/{}", n.addr, n.prefix))
                .collect();
            facts.push((format!("network {}", name.to_string_lossy()), addrs.join(", ")));
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    #[test]
    fn has_the_basics() {
        let facts = super::collect();
        for key in ["os", "hostname", "user", "cpu", "memory", "uptime", "agent"] {
            assert!(facts.iter().any(|(k, _)| k == key), "missing {key}");
        }
        assert!(facts.iter().any(|(k, _)| k.starts_with("network ")));
    }
}
