//! `scsp certs --out DIR --hosts N [--cluster NAME]`: a cluster CA and one
//! certificate per host for the bridge (and for `scsp serve`).

use super::CliResult;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory to write ca.pem, ca.key, host-<i>.pem and host-<i>.key into.
    #[arg(long)]
    out: PathBuf,
    /// Number of hosts (ids 1..=N).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    hosts: u32,
    /// Cluster name, written into the CA's common name.
    #[arg(long, default_value = "scsp")]
    cluster: String,
}

pub fn run(a: Args) -> CliResult<ExitCode> {
    let f = scsp::pki::write_cluster(&a.out, &a.cluster, a.hosts)?;
    println!(
        "wrote {} (CA) and {} host certificates (names scsp-host-1..scsp-host-{}) into {}",
        f.ca_cert.display(),
        f.hosts.len(),
        a.hosts,
        a.out.display()
    );
    println!("private keys (*.key) are owner-only; keep ca.key off the hosts");
    Ok(ExitCode::SUCCESS)
}
