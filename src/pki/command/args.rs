//! What `dockgate pki` parses: subcommands, flags and their help text.
//!
//! Operators and scripts rely on every flag and on the help wording, so this file holds
//! only the clap definitions; what a command does is in [`super::handlers`].

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::config::Config;
use crate::pki::error::PkiError;
use crate::pki::keys::KeyType;
use crate::pki::ops::{self, InitOptions};

/// Certificate authority commands.
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Create a certificate authority in a certs directory.
    ///
    /// Writes DIR/ca.pem (the trust bundle: give it to Docker clients as their ca.pem),
    /// DIR/ca-cert.pem, DIR/ca-key.pem (mode 0600), an empty DIR/crl.pem and DIR/index.toml.
    /// The CA signs the gateway's server certificate and every client certificate.
    ///
    /// The CA key may be moved off this host after init; commands that sign then take
    /// --ca-key PATH. An existing CA is never replaced without --force.
    #[command(after_long_help = "Example:\n  dockgate pki init --dir /etc/dockgate/certs")]
    Init(InitArgs),

    /// Issue (or rotate) the gateway's TLS server certificate.
    ///
    /// Writes DIR/server-cert.pem and DIR/server-key.pem (0600), replacing both atomically,
    /// so running it again rotates the server key; a running gateway picks the pair up on
    /// reload. The certificate is for TLS servers only (EKU serverAuth) and names every
    /// --san; clients must dial one of them.
    #[command(
        after_long_help = "Example:\n  dockgate pki server --dir /etc/dockgate/certs --san gateway.example --san 10.0.0.5"
    )]
    Server(ServerArgs),

    /// Issue a client certificate for a Docker client, with a role.
    ///
    /// The subject is CN=NAME, OU=ROLE, O=dockgate; the gateway applies ROLE's policy to
    /// every request made with it. Writes OUTDIR/ca.pem, OUTDIR/cert.pem and OUTDIR/key.pem
    /// (0600): the layout DOCKER_CERT_PATH expects.
    ///
    /// With --csr, signs the public key of a certificate signing request instead of making
    /// a key, so the private key never leaves the machine that made it; only cert.pem and
    /// ca.pem are written. The CSR's subject and extensions are ignored: identity and role
    /// come from --name and --role.
    ///
    /// With --context NAME --host tcp://HOST:2376, also prints the `docker context create`
    /// line for these files and writes OUTDIR/NAME.dockercontext, a `docker context export`
    /// file (holds the private key) that `docker context import` reads; a CI system can keep
    /// it as one secret.
    #[command(after_long_help = "\
Examples:
  dockgate pki client --dir /etc/dockgate/certs --name ci-runner-1 --role ci --out ./ci-runner-1
  DOCKER_HOST=tcp://gateway.example:2376 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=./ci-runner-1 docker ps

  # The key stays on the runner:
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \\
      -keyout key.pem -out runner.csr -subj /CN=ignored
  dockgate pki client --dir /etc/dockgate/certs --name runner-7 --role ci --csr runner.csr --out ./runner-7

  # One secret for CI:
  dockgate pki client --dir certs --name gha --role ci --out ./gha --context gw --host tcp://gateway.example:2376
  base64 -w0 ./gha/gw.dockercontext   # store as the secret DOCKGATE_CONTEXT
  echo \"$DOCKGATE_CONTEXT\" | base64 -d | docker context import gw - && docker context use gw")]
    Client(ClientArgs),

    /// List CAs and issued certificates, flagging expired and soon-expiring ones.
    List(ListArgs),

    /// Revoke certificates and re-sign the CRL of the CA that issued them.
    ///
    /// --name revokes every unrevoked certificate with that name (after renewals there
    /// may be several); --serial revokes one (a unique prefix of the hex serial is enough).
    /// DIR/crl.pem is rewritten atomically; the gateway refuses the certificates once it
    /// reloads it. Re-signing needs the issuing CA's key: DIR/ca-key.pem for the signing CA,
    /// DIR/cas/SERIAL-key.pem for an older one, or --ca-key.
    Revoke(RevokeArgs),

    /// Re-issue a client certificate: same name and role, new serial and key.
    ///
    /// Renews the newest unrevoked client certificate named NAME, signed by the current
    /// CA (so renewing also moves clients to a rotated CA). The old certificate stays
    /// valid until it expires unless --revoke-old is given.
    Renew(RenewArgs),

    /// Start a CA rotation: make a new signing CA and keep trusting the old one.
    ///
    /// DIR/ca.pem becomes new + old, so clients with certificates from either CA are
    /// accepted, and new certificates come from the new CA. The old CA's certificate and
    /// key move to DIR/cas/SERIAL-cert.pem and DIR/cas/SERIAL-key.pem.
    ///
    /// Then: give every client the new ca.pem (renewing a client does that), renew client
    /// certificates, and only once clients trust the new CA re-issue the server
    /// certificate (`dockgate pki server`): clients check the server against their ca.pem.
    /// Finish with `dockgate pki retire-ca`.
    RotateCa(RotateArgs),

    /// Finish a CA rotation: stop trusting older CAs.
    ///
    /// Removes older CAs (all, or the one given by --serial) from DIR/ca.pem and their
    /// CRLs from DIR/crl.pem; certificates they issued stop working. Their certificates
    /// move to DIR/cas/retired/ and their private keys are deleted. Refuses while they
    /// still have unexpired, unrevoked certificates (other than server certificates
    /// replaced by a newer one), unless --force. The signing CA cannot be retired.
    RetireCa(RetireArgs),

    /// Re-sign every CRL whose CA key is available and rewrite ca.pem and crl.pem.
    ///
    /// CRLs are valid for 7 days (nextUpdate); a gateway that enforces CRL expiry needs
    /// this run at least weekly, e.g. from cron. Also repairs ca.pem and crl.pem from
    /// index.toml after an interrupted command.
    RefreshCrl(RefreshArgs),
}

/// Where the certs directory is: `--dir`, else `DOCKGATE_CERTS`, else the
/// `certs` of the config file (`--config`, `DOCKGATE_CONFIG`).
#[derive(Debug, Args)]
pub struct DirArg {
    /// The certs directory (created by `dockgate pki init`). [default: the
    /// config file's `certs`]
    #[arg(long, value_name = "DIR", env = "DOCKGATE_CERTS")]
    pub dir: Option<PathBuf>,
    /// Config file whose `certs` is the certs directory when --dir is not
    /// given; `pki client` also refuses a --role it does not define.
    #[arg(long, value_name = "FILE", env = "DOCKGATE_CONFIG")]
    pub config: Option<PathBuf>,
}

impl DirArg {
    /// The certs directory this command works on.
    pub fn resolve(&self) -> Result<PathBuf, PkiError> {
        match (&self.dir, &self.config) {
            (Some(dir), _) => Ok(dir.clone()),
            (None, Some(config)) => Config::load(config)
                .map(|c| c.certs)
                .map_err(|e| PkiError::NoCertsDir {
                    reason: e.to_string(),
                }),
            (None, None) => Err(PkiError::NoCertsDir {
                reason: "pass --dir, set DOCKGATE_CERTS, or name a config file with --config or DOCKGATE_CONFIG".into(),
            }),
        }
    }
}

impl PkiCommand {
    /// The certs directory arguments every subcommand has.
    pub fn dir(&self) -> &DirArg {
        match self {
            PkiCommand::Init(a) => &a.dir,
            PkiCommand::Server(a) => &a.dir,
            PkiCommand::Client(a) => &a.dir,
            PkiCommand::List(a) => &a.dir,
            PkiCommand::Revoke(a) => &a.dir,
            PkiCommand::Renew(a) => &a.dir,
            PkiCommand::RotateCa(a) => &a.dir,
            PkiCommand::RetireCa(a) => &a.dir,
            PkiCommand::RefreshCrl(a) => &a.dir,
        }
    }
}

#[derive(Debug, Args)]
pub struct CaKeyArg {
    /// The CA private key, when it is not in the certs directory.
    ///
    /// May be given several times; each key is matched to its CA by public key.
    #[arg(long = "ca-key", value_name = "PATH")]
    pub ca_keys: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CaArgs {
    /// Key algorithm of the new CA.
    ///
    /// RSA keys cannot be generated (ring has no RSA key generation); make one with
    /// OpenSSL and pass it with --import-key instead.
    #[arg(long, value_enum, default_value_t = KeyType::EcdsaP256, value_name = "TYPE")]
    pub key_type: KeyType,
    /// Lifetime of the CA certificate in days.
    #[arg(long, default_value_t = ops::DEFAULT_CA_DAYS, value_parser = days_parser())]
    pub days: u32,
    /// Subject common name of the CA. [default: dockgate CA <date> <serial prefix>]
    #[arg(long, value_name = "NAME")]
    pub cn: Option<String>,
    /// Use this existing PKCS#8 PEM private key for the CA (ECDSA, Ed25519 or RSA).
    ///
    /// It is copied to DIR/ca-key.pem. Make an RSA key with e.g.
    /// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out rsa-ca-key.pem`.
    #[arg(long, value_name = "PATH", conflicts_with = "key_type")]
    pub import_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub dir: DirArg,
    #[command(flatten)]
    pub ca: CaArgs,
    /// Replace an existing CA. Every certificate it issued stops being trusted.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// A DNS name or IP address clients use to reach the gateway (repeatable).
    ///
    /// IP addresses become IP SANs, anything else a DNS SAN; `*.example.com` wildcards
    /// are allowed. The first one is also the subject CN.
    #[arg(long, value_name = "NAME_OR_IP", required = true)]
    pub san: Vec<String>,
    /// Lifetime in days (capped at the CA's expiry).
    #[arg(long, default_value_t = ops::DEFAULT_SERVER_DAYS, value_parser = days_parser())]
    pub days: u32,
    /// Key algorithm of the server key.
    #[arg(long, value_enum, default_value_t = KeyType::EcdsaP256, value_name = "TYPE")]
    pub key_type: KeyType,
    #[command(flatten)]
    pub ca_key: CaKeyArg,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// The client's identity: subject CN, shown in the gateway's audit log.
    #[arg(long)]
    pub name: String,
    /// The role whose policy applies to this client: subject OU.
    #[arg(long)]
    pub role: String,
    /// Directory to write ca.pem, cert.pem and key.pem to (created 0700 if missing).
    #[arg(long, value_name = "OUTDIR")]
    pub out: PathBuf,
    /// Lifetime in days (capped at the CA's expiry).
    #[arg(long, default_value_t = ops::DEFAULT_CLIENT_DAYS, value_parser = days_parser())]
    pub days: u32,
    /// Key algorithm of the generated client key.
    #[arg(long, value_enum, default_value_t = KeyType::EcdsaP256, value_name = "TYPE")]
    pub key_type: KeyType,
    /// Sign the public key of this PEM certificate signing request instead of making a key.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["key_type", "context"])]
    pub csr: Option<PathBuf>,
    /// Also print a `docker context create` line and write OUTDIR/NAME.dockercontext.
    #[arg(long, value_name = "NAME", requires = "host")]
    pub context: Option<String>,
    /// The gateway's address for the context and the printed DOCKER_HOST, tcp://HOST:PORT.
    #[arg(long, value_name = "tcp://HOST:PORT")]
    pub host: Option<String>,
    #[command(flatten)]
    pub ca_key: CaKeyArg,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Flag certificates that expire within this many days.
    #[arg(long, default_value_t = 14, value_name = "DAYS")]
    pub warn_days: u32,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["name", "serial"]))]
pub struct RevokeArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Revoke every unrevoked certificate with this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Revoke the certificate with this serial (hex; a unique prefix is enough).
    #[arg(long, value_name = "HEX")]
    pub serial: Option<String>,
    #[command(flatten)]
    pub ca_key: CaKeyArg,
}

#[derive(Debug, Args)]
pub struct RenewArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Name of the client certificate to renew.
    #[arg(long)]
    pub name: String,
    /// Lifetime of the new certificate in days.
    #[arg(long, default_value_t = ops::DEFAULT_CLIENT_DAYS, value_parser = days_parser())]
    pub days: u32,
    /// Where to write ca.pem, cert.pem and key.pem. With --csr and no --out, the
    /// certificate is printed to standard output.
    #[arg(long, value_name = "OUTDIR", required_unless_present = "csr")]
    pub out: Option<PathBuf>,
    /// Sign this CSR's public key instead of making a new key.
    #[arg(long, value_name = "FILE", conflicts_with = "key_type")]
    pub csr: Option<PathBuf>,
    /// Key algorithm of the new client key.
    #[arg(long, value_enum, default_value_t = KeyType::EcdsaP256, value_name = "TYPE")]
    pub key_type: KeyType,
    /// Revoke the certificates being replaced now instead of letting them expire.
    #[arg(long)]
    pub revoke_old: bool,
    #[command(flatten)]
    pub ca_key: CaKeyArg,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    pub dir: DirArg,
    #[command(flatten)]
    pub ca: CaArgs,
}

#[derive(Debug, Args)]
pub struct RetireArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Retire only this CA (hex serial or unique prefix). Default: every older CA.
    #[arg(long, value_name = "HEX")]
    pub serial: Option<String>,
    /// Retire even though the CA still has unexpired, unrevoked certificates.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RefreshArgs {
    #[command(flatten)]
    pub dir: DirArg,
    #[command(flatten)]
    pub ca_key: CaKeyArg,
}

fn days_parser() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..=i64::from(ops::MAX_DAYS))
}

impl CaArgs {
    pub(super) fn options(&self, force: bool) -> InitOptions {
        InitOptions {
            key_type: self.key_type,
            days: self.days,
            cn: self.cn.clone(),
            import_key: self.import_key.clone(),
            force,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: PkiCommand,
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_parse_and_conflict() {
        let ok = Cli::try_parse_from([
            "pki",
            "client",
            "--dir",
            "d",
            "--name",
            "n",
            "--role",
            "r",
            "--out",
            "o",
            "--context",
            "gw",
            "--host",
            "tcp://h:2376",
        ]);
        assert!(ok.is_ok());
        let no_host = Cli::try_parse_from([
            "pki",
            "client",
            "--dir",
            "d",
            "--name",
            "n",
            "--role",
            "r",
            "--out",
            "o",
            "--context",
            "gw",
        ]);
        assert!(no_host.is_err());
        let both = Cli::try_parse_from([
            "pki", "revoke", "--dir", "d", "--name", "n", "--serial", "ab",
        ]);
        assert!(both.is_err());
        let neither = Cli::try_parse_from(["pki", "revoke", "--dir", "d"]);
        assert!(neither.is_err());
        let renew_stdout =
            Cli::try_parse_from(["pki", "renew", "--dir", "d", "--name", "n", "--csr", "c"]);
        assert!(renew_stdout.is_ok());
        let renew_nowhere = Cli::try_parse_from(["pki", "renew", "--dir", "d", "--name", "n"]);
        assert!(renew_nowhere.is_err());
        let zero_days = Cli::try_parse_from(["pki", "init", "--dir", "d", "--days", "0"]);
        assert!(zero_days.is_err());
        let rsa = Cli::try_parse_from(["pki", "init", "--dir", "d", "--key-type", "rsa-4096"]);
        assert!(rsa.is_ok());
    }
}
