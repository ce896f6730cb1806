//! Flags shared by several commands: those that run many simulations (`sweep`, `explore`),
//! and those that reach a real server (`upload`, later `probe`).

/// `--seed`, `-j/--jobs`, `--shard`, `--json`: the same words as `scenario`'s.
#[derive(Debug, Clone, clap::Args)]
pub struct Batch {
    /// Seed of the first run (the others follow it: seed, seed+1, ...).
    #[arg(long = "seed", alias = "first-seed", default_value_t = 1)]
    pub first_seed: u64,
    /// Worker threads (default: all cores).
    #[arg(short, long, value_name = "J")]
    pub jobs: Option<usize>,
    /// Run only shard K of M (1-based): every M-th run starting at the K-th.
    #[arg(long, value_name = "K/M", value_parser = shard)]
    pub shard: Option<(u64, u64)>,
    /// Print the results as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

impl Batch {
    /// Worker threads to use.
    pub fn threads(&self) -> usize {
        crate::parallel::threads(self.jobs)
    }
}

/// Parses `K/M` (1-based K).
fn shard(s: &str) -> Result<(u64, u64), String> {
    let (k, m) = s.split_once('/').ok_or("--shard is K/M, e.g. 2/8")?;
    let k: u64 = k.trim().parse().map_err(|_| "--shard K is a number")?;
    let m: u64 = m.trim().parse().map_err(|_| "--shard M is a number")?;
    if m >= 1 && (1..=m).contains(&k) {
        Ok((k, m))
    } else {
        Err(format!("--shard {k}/{m}: K must be 1 to M"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_k_of_m() {
        assert_eq!(shard("2/8"), Ok((2, 8)));
        assert_eq!(shard(" 1 / 1 "), Ok((1, 1)));
        for bad in ["0/3", "4/3", "x/3", "2", "2/0"] {
            assert!(shard(bad).is_err(), "{bad}");
        }
    }
}

/// How a client command reaches a real server: TLS trust and HTTP Basic authentication.
#[derive(Debug, Clone, clap::Args)]
pub struct Reach {
    /// For https:// URLs, trust the certificate authorities in this PEM file too (beside the
    /// system's; repeatable).
    #[arg(long = "ca-cert", value_name = "FILE")]
    pub ca_cert: Vec<std::path::PathBuf>,
    /// For https:// URLs, accept any server certificate. Test farms only: anyone between here
    /// and the server can then read and change the traffic.
    #[arg(long)]
    pub insecure: bool,
    /// HTTP Basic authentication as NAME, or NAME:PASSWORD (visible to other users of this
    /// machine; prefer the BITSFARM_PASSWORD environment variable or the prompt). NTLM and
    /// Negotiate are not supported.
    #[arg(long, value_name = "NAME[:PASSWORD]")]
    pub user: Option<String>,
}

/// Where a password comes from when `--user` has none.
pub const PASSWORD_VAR: &str = "BITSFARM_PASSWORD";

impl Reach {
    /// The connector for `url`: TLS with the trust settings for https://, plain TCP otherwise.
    pub fn connector(&self, url: &str) -> anyhow::Result<std::sync::Arc<dyn transport::Connect>> {
        let (_, tls) =
            transport::url::parse_web(url).map_err(|e| anyhow::anyhow!("{url:?}: {e}"))?;
        if !tls {
            return Ok(std::sync::Arc::new(transport::tcp::TcpConnect));
        }
        if self.insecure {
            crate::out::errln!(
                "WARNING: --insecure: the server's certificate is not checked; anyone between here and the server can read and change this upload"
            );
        }
        let trust = transport::tls::Trust {
            ca_files: self.ca_cert.clone(),
            insecure: self.insecure,
        };
        let config = transport::tls::client_config(&trust).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(std::sync::Arc::new(transport::tls::TlsConnect::new(config)))
    }

    /// The Basic credentials of `--user`: the password after its `:`, else from
    /// [`PASSWORD_VAR`], else asked for on the terminal (not echoed).
    pub fn credentials(&self) -> anyhow::Result<Option<transport::auth::Credentials>> {
        self.user
            .as_deref()
            .map(|u| credentials("--user", u))
            .transpose()
    }
}

/// Credentials from `NAME:PASSWORD`, or `NAME` with the password from [`PASSWORD_VAR`] or
/// asked for on the terminal (not echoed). `flag` names the flag in errors.
pub fn credentials(flag: &str, user: &str) -> anyhow::Result<transport::auth::Credentials> {
    let (name, password) = match user.split_once(':') {
        Some((n, p)) => (n.to_owned(), p.to_owned()),
        None => (
            user.to_owned(),
            match std::env::var(PASSWORD_VAR) {
                Ok(p) => p,
                Err(_) => prompt_password(user)?,
            },
        ),
    };
    transport::auth::Credentials::new(&name, &password)
        .ok_or_else(|| anyhow::anyhow!("{flag}: give a user name (NAME or NAME:PASSWORD)"))
}

/// Reads a password from the terminal with echo off.
fn prompt_password(user: &str) -> anyhow::Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, isatty, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    anyhow::ensure!(
        isatty(&stdin),
        "--user {user}: no password; set {PASSWORD_VAR} or run in a terminal to be asked"
    );
    let saved = tcgetattr(&stdin)?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &quiet)?;
    eprint!("password for {user}: ");
    let mut line = String::new();
    let read = std::io::BufRead::read_line(&mut stdin.lock(), &mut line);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &saved);
    eprintln!();
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
