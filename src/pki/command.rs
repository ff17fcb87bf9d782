//! `dockgate pki …`: the command line over [`super::ops`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use time::{Duration, OffsetDateTime};

use super::context::{self, Context};
use super::error::PkiError;
use super::index::{CaState, CertKind, CertRecord, CertStatus, Index};
use super::keys::KeyType;
use super::ops::{self, ClientRequest, InitOptions, RenewRequest, RevokeTarget, ServerRequest};
use super::store;

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

#[derive(Debug, Args)]
pub struct DirArg {
    /// The certs directory (created by `dockgate pki init`).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
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
    fn options(&self, force: bool) -> InitOptions {
        InitOptions {
            key_type: self.key_type,
            days: self.days,
            cn: self.cn.clone(),
            import_key: self.import_key.clone(),
            force,
        }
    }
}

/// Runs one `dockgate pki` command, printing what it did to standard output.
pub fn run(cmd: PkiCommand) -> Result<(), PkiError> {
    match cmd {
        PkiCommand::Init(a) => init(&a),
        PkiCommand::Server(a) => server(a),
        PkiCommand::Client(a) => client(a),
        PkiCommand::List(a) => {
            let index = ops::load_index(&a.dir.dir)?;
            print!(
                "{}",
                render_list(&index, OffsetDateTime::now_utc(), a.warn_days)
            );
            Ok(())
        }
        PkiCommand::Revoke(a) => revoke(a),
        PkiCommand::Renew(a) => renew(a),
        PkiCommand::RotateCa(a) => rotate(&a),
        PkiCommand::RetireCa(a) => retire(&a),
        PkiCommand::RefreshCrl(a) => refresh(&a),
    }
}

fn date(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

fn init(a: &InitArgs) -> Result<(), PkiError> {
    let dir = &a.dir.dir;
    let ca = ops::init(dir, &a.ca.options(a.force))?;
    println!(
        "Created CA \"{}\" ({}, serial {}, valid until {})",
        ca.subject,
        ca.key_type,
        ca.serial,
        date(ca.not_after)
    );
    let d = dir.display();
    println!("  {d}/ca.pem         trust bundle; Docker clients use it as their ca.pem");
    println!("  {d}/ca-cert.pem    the signing CA certificate");
    println!("  {d}/ca-key.pem     CA private key (0600); may be moved away, then pass --ca-key");
    println!("  {d}/crl.pem        certificate revocation lists");
    println!("  {d}/index.toml     record of everything issued");
    println!("Next: dockgate pki server --dir {d} --san <gateway host name or IP>");
    Ok(())
}

fn server(a: ServerArgs) -> Result<(), PkiError> {
    let req = ServerRequest {
        sans: a.san,
        days: a.days,
        key_type: a.key_type,
        ca_keys: a.ca_key.ca_keys,
    };
    let issued = ops::issue_server(&a.dir.dir, &req)?;
    println!(
        "Issued server certificate for {} (serial {}, valid until {}{})",
        req.sans.join(", "),
        issued.record.serial,
        date(issued.record.not_after),
        capped_note(issued.capped)
    );
    println!("  {}", issued.cert_path.display());
    println!("  {}  (0600)", issued.key_path.display());
    println!("A running gateway picks the new pair up when it reloads.");
    Ok(())
}

fn capped_note(capped: bool) -> &'static str {
    if capped {
        ", cut to the CA's expiry"
    } else {
        ""
    }
}

fn client(a: ClientArgs) -> Result<(), PkiError> {
    if let Some(name) = &a.context {
        context::check_name(name)?;
    }
    if let Some(host) = &a.host {
        context::check_host(host)?;
    }
    let csr_pem = a.csr.as_deref().map(store::read_string).transpose()?;
    if let Some(csr) = &csr_pem {
        ops::check_csr_output(&a.out, csr)?;
    }
    let req = ClientRequest {
        name: a.name,
        role: a.role,
        days: a.days,
        key_type: a.key_type,
        csr_pem,
        ca_keys: a.ca_key.ca_keys,
    };
    let issued = ops::issue_client(&a.dir.dir, &req)?;
    let written = issued.write_to(&a.out)?;
    print_issued_client(&issued, &written);
    let out = absolute(&a.out);
    let host = a.host.as_deref();
    println!(
        "Use it:  DOCKER_HOST={} DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH={} docker version",
        host.unwrap_or("tcp://<gateway>:2376"),
        out.display()
    );
    if let (Some(name), Some(host), Some(key_pem)) = (&a.context, host, &issued.key_pem) {
        let ctx = Context {
            name,
            host,
            description: format!("dockgate: {} (role {})", req.name, req.role),
            ca_pem: &issued.ca_pem,
            cert_pem: &issued.cert_pem,
            key_pem,
        };
        let file = a.out.join(format!("{name}.dockercontext"));
        store::write_atomic(&file, &ctx.export_tar(ops::unix_now()), store::SECRET)?;
        println!();
        println!("Docker context {name}, either from the files:");
        println!("  {}", context::create_command(name, host, &out));
        println!("or from the exported context (one file, holds the private key: 0600):");
        println!("  docker context import {name} {}", file.display());
        println!("For CI, store it as one secret and unpack it in the job:");
        println!(
            "  base64 -w0 {}    # value of secret DOCKGATE_CONTEXT",
            file.display()
        );
        println!(
            "  echo \"$DOCKGATE_CONTEXT\" | base64 -d | docker context import {name} - && docker context use {name}"
        );
    }
    Ok(())
}

fn print_issued_client(issued: &ops::IssuedClient, written: &[PathBuf]) {
    let r = &issued.record;
    println!(
        "Issued client certificate \"{}\" with role {} (serial {}, valid until {}{})",
        r.name,
        r.role.as_deref().unwrap_or("-"),
        r.serial,
        date(r.not_after),
        capped_note(issued.capped)
    );
    for path in written {
        let note = if path.ends_with("key.pem") {
            "  (0600)"
        } else {
            ""
        };
        println!("  {}{note}", path.display());
    }
}

fn revoke(a: RevokeArgs) -> Result<(), PkiError> {
    // clap makes exactly one of --name / --serial present.
    let target = match (a.name, a.serial) {
        (Some(name), _) => RevokeTarget::Name(name),
        (None, serial) => RevokeTarget::Serial(serial.unwrap_or_default()),
    };
    let revoked = ops::revoke(&a.dir.dir, &target, &a.ca_key.ca_keys)?;
    for r in &revoked {
        println!(
            "Revoked {} {} (serial {})",
            kind_word(r.kind),
            r.name,
            r.serial
        );
    }
    println!(
        "{}/crl.pem rewritten; the gateway refuses them once it reloads the CRL.",
        a.dir.dir.display()
    );
    Ok(())
}

fn kind_word(kind: CertKind) -> &'static str {
    match kind {
        CertKind::Client => "client",
        CertKind::Server => "server",
    }
}

fn renew(a: RenewArgs) -> Result<(), PkiError> {
    let csr_pem = a.csr.as_deref().map(store::read_string).transpose()?;
    if let (Some(csr), Some(out)) = (&csr_pem, &a.out) {
        ops::check_csr_output(out, csr)?;
    }
    let req = RenewRequest {
        name: a.name,
        days: a.days,
        key_type: a.key_type,
        csr_pem,
        ca_keys: a.ca_key.ca_keys,
        revoke_old: a.revoke_old,
    };
    let renewed = ops::renew(&a.dir.dir, &req)?;
    match &a.out {
        Some(out) => {
            let written = renewed.issued.write_to(out)?;
            print_issued_client(&renewed.issued, &written);
        }
        None => print!("{}", renewed.issued.cert_pem),
    }
    // With the certificate on stdout, keep stdout clean for piping.
    let say = |line: String| {
        if a.out.is_some() {
            println!("{line}");
        } else {
            eprintln!("{line}");
        }
    };
    for r in &renewed.revoked {
        say(format!("Revoked the replaced certificate {}", r.serial));
    }
    Ok(())
}

fn rotate(a: &RotateArgs) -> Result<(), PkiError> {
    let dir = &a.dir.dir;
    let had_key = dir.join("ca-key.pem").exists();
    let ca = ops::rotate_ca(dir, &a.ca.options(false))?;
    println!(
        "New signing CA \"{}\" ({}, serial {}, valid until {})",
        ca.subject,
        ca.key_type,
        ca.serial,
        date(ca.not_after)
    );
    let index = ops::load_index(dir)?;
    println!("{}/ca.pem now trusts:", dir.display());
    for c in index.trusted_cas() {
        println!("  {}  {}", c.serial, c.subject);
    }
    if !had_key {
        println!(
            "The new CA key is in {}/ca-key.pem; move it away like the old one if you keep CA keys offline.",
            dir.display()
        );
    }
    println!("Next:");
    println!("  1. give clients the new ca.pem and renew their certificates: dockgate pki renew --dir {} --name NAME --out OUTDIR", dir.display());
    println!("  2. once clients trust the new CA, re-issue the server certificate: dockgate pki server --dir {} --san …", dir.display());
    println!(
        "  3. stop trusting the old CA: dockgate pki retire-ca --dir {}",
        dir.display()
    );
    Ok(())
}

fn retire(a: &RetireArgs) -> Result<(), PkiError> {
    let retired = ops::retire_ca(&a.dir.dir, a.serial.as_deref(), a.force)?;
    if retired.is_empty() {
        println!("That CA is already retired; nothing changed.");
    }
    for ca in &retired {
        println!("Retired CA {} \"{}\"", ca.serial, ca.subject);
    }
    Ok(())
}

fn refresh(a: &RefreshArgs) -> Result<(), PkiError> {
    for r in ops::refresh_crls(&a.dir.dir, &a.ca_key.ca_keys)? {
        if r.resigned {
            println!(
                "Re-signed the CRL of CA {} \"{}\"",
                r.ca.serial, r.ca.subject
            );
        } else {
            println!(
                "Kept the CRL of CA {} \"{}\" (its key is not available; pass --ca-key to re-sign)",
                r.ca.serial, r.ca.subject
            );
        }
    }
    Ok(())
}

/// What `list` shows in the STATUS column.
fn status(c: &CertRecord, index: &Index, now: OffsetDateTime, warn: Duration) -> (String, Flag) {
    if c.status == CertStatus::Revoked {
        return ("revoked".into(), Flag::None);
    }
    if index.is_superseded(c) {
        return ("superseded".into(), Flag::None);
    }
    if c.is_expired(now) {
        return ("EXPIRED".into(), Flag::Expired);
    }
    if index
        .ca(&c.issuer_serial)
        .is_some_and(|ca| ca.state == CaState::Retired)
    {
        return ("untrusted (CA retired)".into(), Flag::None);
    }
    let left = c.not_after - now;
    if left <= warn {
        let text = if left < Duration::days(1) {
            format!("EXPIRES in {}h", left.whole_hours())
        } else {
            format!("EXPIRES in {}d", left.whole_days())
        };
        return (text, Flag::Expiring);
    }
    ("valid".into(), Flag::None)
}

#[derive(PartialEq)]
enum Flag {
    None,
    Expiring,
    Expired,
}

fn table(rows: &[Vec<String>]) -> String {
    let mut widths = vec![0; rows.first().map_or(0, Vec::len)];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn render_list(index: &Index, now: OffsetDateTime, warn_days: u32) -> String {
    let warn = Duration::days(i64::from(warn_days));
    let mut out = String::new();
    let mut cas = vec![vec![
        "CA SERIAL".to_owned(),
        "SUBJECT".to_owned(),
        "KEY".to_owned(),
        "EXPIRES".to_owned(),
        "STATE".to_owned(),
    ]];
    for ca in &index.cas {
        let state = match ca.state {
            CaState::Signing => "signing",
            CaState::Trusted => "trusted (older)",
            CaState::Retired => "retired",
        };
        cas.push(vec![
            ca.serial.clone(),
            ca.subject.clone(),
            ca.key_type.clone(),
            date(ca.not_after),
            state.to_owned(),
        ]);
    }
    out.push_str(&table(&cas));
    if index.certs.is_empty() {
        out.push_str("\nNo certificates issued yet.\n");
        return out;
    }
    let mut rows = vec![vec![
        "NAME".to_owned(),
        "ROLE".to_owned(),
        "KIND".to_owned(),
        "SERIAL".to_owned(),
        "CA".to_owned(),
        "EXPIRES".to_owned(),
        "STATUS".to_owned(),
    ]];
    let (mut expiring, mut expired) = (Vec::new(), Vec::new());
    for c in &index.certs {
        let (text, flag) = status(c, index, now, warn);
        match flag {
            Flag::Expiring => expiring.push(c.name.as_str()),
            Flag::Expired => expired.push(c.name.as_str()),
            Flag::None => {}
        }
        rows.push(vec![
            c.name.clone(),
            c.role.clone().unwrap_or_else(|| "-".into()),
            kind_word(c.kind).to_owned(),
            c.serial.clone(),
            c.issuer_serial.chars().take(8).collect(),
            date(c.not_after),
            text,
        ]);
    }
    out.push('\n');
    out.push_str(&table(&rows));
    if !expiring.is_empty() {
        let _ = writeln!(
            out,
            "\n{} certificate(s) expire within {warn_days} days: {}. Renew clients with `dockgate pki renew`, the server with `dockgate pki server`.",
            expiring.len(),
            expiring.join(", ")
        );
    }
    if !expired.is_empty() {
        let _ = writeln!(
            out,
            "\n{} certificate(s) have expired: {}.",
            expired.len(),
            expired.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::index::{CaRecord, CertKind};
    use clap::Parser;
    use time::macros::datetime;

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

    #[test]
    fn list_flags_expiring_and_expired() {
        let now = datetime!(2030-06-01 12:00 UTC);
        let mut index = Index::new(CaRecord {
            serial: "4a".into(),
            subject: "dockgate CA".into(),
            key_type: "ecdsa-p256".into(),
            not_before: datetime!(2030-01-01 0:00 UTC),
            not_after: datetime!(2040-01-01 0:00 UTC),
            state: CaState::Signing,
            crl_number: 1,
            fingerprint: "00".into(),
        });
        let cert = |name: &str, serial: &str, not_after, status| CertRecord {
            name: name.into(),
            role: Some("ci".into()),
            kind: CertKind::Client,
            serial: serial.into(),
            issuer_serial: "4a".into(),
            not_before: datetime!(2030-01-01 0:00 UTC),
            not_after,
            status,
            revoked_at: None,
            fingerprint: "00".into(),
        };
        index.certs.push(cert(
            "fresh",
            "41",
            datetime!(2030-08-01 0:00 UTC),
            CertStatus::Valid,
        ));
        index.certs.push(cert(
            "soon",
            "42",
            datetime!(2030-06-05 12:00 UTC),
            CertStatus::Valid,
        ));
        index.certs.push(cert(
            "old",
            "43",
            datetime!(2030-05-01 0:00 UTC),
            CertStatus::Valid,
        ));
        index.certs.push(cert(
            "gone",
            "44",
            datetime!(2030-08-01 0:00 UTC),
            CertStatus::Revoked,
        ));
        let mut server = cert(
            "gw-old",
            "45",
            datetime!(2030-05-01 0:00 UTC),
            CertStatus::Valid,
        );
        server.kind = CertKind::Server;
        server.role = None;
        index.certs.push(server.clone());
        server.name = "gw-new".into();
        server.serial = "46".into();
        server.not_before = datetime!(2030-02-01 0:00 UTC);
        server.not_after = datetime!(2032-02-01 0:00 UTC);
        index.certs.push(server);
        let text = render_list(&index, now, 14);
        let line = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
                .to_owned()
        };
        assert!(line("fresh").ends_with("valid"), "{text}");
        assert!(line("soon").ends_with("EXPIRES in 4d"), "{text}");
        assert!(line("old").ends_with("EXPIRED"), "{text}");
        assert!(line("gone").ends_with("revoked"), "{text}");
        assert!(line("gw-old").ends_with("superseded"), "{text}");
        assert!(line("gw-new").ends_with("valid"), "{text}");
        assert!(
            line("gw-new").contains(" - "),
            "servers have no role: {text}"
        );
        assert!(
            text.contains("1 certificate(s) expire within 14 days: soon."),
            "{text}"
        );
        assert!(
            text.contains("1 certificate(s) have expired: old."),
            "{text}"
        );
        // A narrower window stops flagging "soon".
        assert!(!render_list(&index, now, 2).contains("expire within"));
    }
}
