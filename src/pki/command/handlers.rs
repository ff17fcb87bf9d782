//! Running one `dockgate pki` command and saying what it did on standard output.
//!
//! Each handler turns parsed arguments into one [`crate::pki::ops`] call; the output
//! wording is part of the command line's contract.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::args::{
    ClientArgs, InitArgs, PkiCommand, RefreshArgs, RenewArgs, RetireArgs, RevokeArgs, RotateArgs,
    ServerArgs,
};
use super::{date, kind_word, list};
use crate::pki::context::{self, Context};
use crate::pki::error::PkiError;
use crate::pki::layout::Layout;
use crate::pki::ops::{self, ClientRequest, RenewRequest, RevokeTarget, ServerRequest};
use crate::pki::store;

/// Runs one `dockgate pki` command, printing what it did to standard output.
pub fn run(cmd: PkiCommand) -> Result<(), PkiError> {
    let dir = &cmd.dir().resolve()?;
    match cmd {
        PkiCommand::Init(a) => init(dir, &a),
        PkiCommand::Server(a) => server(dir, a),
        PkiCommand::Client(a) => client(dir, a),
        PkiCommand::List(a) => {
            let index = ops::load_index(dir)?;
            print!(
                "{}",
                list::render(&index, OffsetDateTime::now_utc(), a.warn_days)
            );
            Ok(())
        }
        PkiCommand::Revoke(a) => revoke(dir, a),
        PkiCommand::Renew(a) => renew(dir, a),
        PkiCommand::RotateCa(a) => rotate(dir, &a),
        PkiCommand::RetireCa(a) => retire(dir, &a),
        PkiCommand::RefreshCrl(a) => refresh(dir, &a),
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

fn init(dir: &Path, a: &InitArgs) -> Result<(), PkiError> {
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

fn server(dir: &Path, a: ServerArgs) -> Result<(), PkiError> {
    let req = ServerRequest {
        sans: a.san,
        days: a.days,
        key_type: a.key_type,
        ca_keys: a.ca_key.ca_keys,
    };
    let issued = ops::issue_server(dir, &req)?;
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

fn client(dir: &Path, a: ClientArgs) -> Result<(), PkiError> {
    if let Some(config) = &a.dir.config {
        role_defined(&a.role, config)?;
    }
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
    let issued = ops::issue_client(dir, &req)?;
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

fn revoke(dir: &Path, a: RevokeArgs) -> Result<(), PkiError> {
    // clap makes exactly one of --name / --serial present.
    let target = match (a.name, a.serial) {
        (Some(name), _) => RevokeTarget::Name(name),
        (None, serial) => RevokeTarget::Serial(serial.unwrap_or_default()),
    };
    let revoked = ops::revoke(dir, &target, &a.ca_key.ca_keys)?;
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
        dir.display()
    );
    Ok(())
}

fn renew(dir: &Path, a: RenewArgs) -> Result<(), PkiError> {
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
    let renewed = ops::renew(dir, &req)?;
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

fn rotate(dir: &Path, a: &RotateArgs) -> Result<(), PkiError> {
    let had_key = Layout::new(dir).ca_key().exists();
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

fn retire(dir: &Path, a: &RetireArgs) -> Result<(), PkiError> {
    let retired = ops::retire_ca(dir, a.serial.as_deref(), a.force)?;
    if retired.is_empty() {
        println!("That CA is already retired; nothing changed.");
    }
    for ca in &retired {
        println!("Retired CA {} \"{}\"", ca.serial, ca.subject);
    }
    Ok(())
}

fn refresh(dir: &Path, a: &RefreshArgs) -> Result<(), PkiError> {
    for r in ops::refresh_crls(dir, &a.ca_key.ca_keys)? {
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

/// A certificate for a role the gateway does not define is refused at
/// every request: refuse to issue it, naming the roles that exist.
fn role_defined(role: &str, config: &std::path::Path) -> Result<(), PkiError> {
    let loaded = crate::config::Config::load(config).map_err(|e| PkiError::Config {
        path: config.to_owned(),
        reason: e.to_string(),
    })?;
    if loaded.roles.contains_key(role) {
        return Ok(());
    }
    Err(PkiError::UndefinedRole {
        role: role.to_owned(),
        config: config.to_owned(),
        defined: loaded.roles.keys().cloned().collect(),
    })
}
