#!/usr/bin/env bash
# Installs dockgate on a Docker host, in place of dockerd's own TLS listener
# (`dockerd --tlsverify -H tcp://0.0.0.0:2376`). Run as root. Idempotent:
# running it again upgrades the binary and the units and keeps the config,
# the certificates and the audit log.
#
# See deploy/README.md, or run with --help.
set -euo pipefail
# Directories made along the way (install -D, --destdir) are world-readable, as on any system.
umask 022

# Paths as the installed system sees them; with --destdir (or DESTDIR) files
# are written under that root instead (see `at`).
PREFIX=/usr/local
DESTDIR=${DESTDIR:-}
readonly ETC=/etc/dockgate
readonly CONFIG=$ETC/dockgate.toml
readonly CERTS=$ETC/certs
readonly STATE=/var/lib/dockgate
readonly LOGS=/var/log/dockgate
readonly AUDIT=$LOGS/audit.log
readonly UNITS=/etc/systemd/system
readonly DAEMON_JSON=/etc/docker/daemon.json
# Drop-ins apply in name order: sort after `systemctl edit`'s override.conf.
readonly DOCKER_DROPIN=$UNITS/docker.service.d/zz-dockgate-no-tcp.conf
readonly USER_NAME=dockgate
# Set again from PREFIX once the options are read.
BIN=$PREFIX/bin/dockgate
DOC=$PREFIX/share/doc/dockgate
MAN=$PREFIX/share/man/man1/dockgate.1

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE=$here
readonly SRC=${HERE%/deploy}

binary=""
listen=""
sans=()
disable_dockerd_tcp=false
start=true
dry_run=false
changed=false

usage() {
    cat <<EOF
Usage: sudo $0 [OPTIONS]

Installs dockgate as a hardened systemd service listening on TCP 2376:
  $BIN, user $USER_NAME, $CONFIG, a CA and server certificate in $CERTS,
  the audit log in $LOGS, dockgate.service and a daily CRL refresh timer.

Options:
  --binary PATH          Install this dockgate binary. Default: build one with
                         'cargo build --release' in this checkout ($SRC).
                         With --binary, only this script's directory is needed
                         (the config comes from 'dockgate config default').
  --prefix DIR           Where the binary (DIR/bin), documentation and man page
                         (DIR/share) go (default: /usr/local). The units are
                         written to run DIR/bin/dockgate.
  --destdir ROOT         Write every file under ROOT (also: DESTDIR=ROOT), as
                         for a package: no user, no ownership, no CA, no
                         systemctl and no look at dockerd. The CA is made on the
                         host the files end up on (run this script there).
  --san NAME_OR_IP       A name or address clients dial, for the server
                         certificate (repeatable). Default: this host's names
                         and global addresses. Used only when no server
                         certificate exists yet.
  --listen ADDR          Listen address for a newly written config
                         (default: the shipped 0.0.0.0:2376).
  --disable-dockerd-tcp  Remove dockerd's own tcp:// listener: edits
                         $DAEMON_JSON (after a backup) and/or adds the
                         drop-in $DOCKER_DROPIN. dockerd
                         must then be restarted, which this script leaves to you.
  --no-start             Install and enable, but do not (re)start dockgate.
  --dry-run              Print what would be done; change nothing.
  -h, --help             This help.
EOF
}

say() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Runs a command that changes the system, or prints it under --dry-run.
run() {
    if $dry_run; then
        printf '    [dry-run]'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

# Runs a command as the dockgate user from /, where it may read.
as_dockgate() {
    run runuser -u "$USER_NAME" -- sh -c 'cd / && exec "$@"' sh "$@"
}

# Installs content from stdin as FILE with MODE and OWNER:GROUP, unless FILE
# already has that content. Sets `changed` when it writes.
put() {
    local file mode=$2 owner=$3 tmp
    file=$(at "$1")
    tmp=$(mktemp)
    cat >"$tmp"
    if [[ -f $file ]] && cmp -s "$tmp" "$file"; then
        rm -f "$tmp"
        return
    fi
    if $dry_run; then
        printf '    [dry-run] write %s (%s %s)\n' "$file" "$mode" "$owner"
    else
        # shellcheck disable=SC2046 # owned prints separate options
        install -D -m "$mode" $(owned "$owner") "$tmp" "$file"
        note "wrote $file"
    fi
    rm -f "$tmp"
    changed=true
}

have_systemd() { ! staged && [[ -d /run/systemd/system ]]; }

parse_args() {
    while (($#)); do
        case $1 in
        --binary) binary=${2:?--binary needs a path}; shift ;;
        --binary=*) binary=${1#*=} ;;
        --san) sans+=("${2:?--san needs a value}"); shift ;;
        --san=*) sans+=("${1#*=}") ;;
        --prefix) PREFIX=${2:?--prefix needs a directory}; shift ;;
        --prefix=*) PREFIX=${1#*=} ;;
        --destdir) DESTDIR=${2:?--destdir needs a directory}; shift ;;
        --destdir=*) DESTDIR=${1#*=} ;;
        --listen) listen=${2:?--listen needs an address}; shift ;;
        --listen=*) listen=${1#*=} ;;
        --disable-dockerd-tcp) disable_dockerd_tcp=true ;;
        --no-start) start=false ;;
        --dry-run) dry_run=true ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
        esac
        shift
    done
    PREFIX=${PREFIX%/}
    BIN=$PREFIX/bin/dockgate
    DOC=$PREFIX/share/doc/dockgate
    MAN=$PREFIX/share/man/man1/dockgate.1
    if [[ -n $DESTDIR ]]; then
        DESTDIR=$(realpath -m "$DESTDIR")
        [[ $DESTDIR != / ]] || die "--destdir / is the system itself: leave it out"
    fi
}

staged() { [[ -n $DESTDIR ]]; }

# Where PATH (as the installed system sees it) is written.
at() { printf '%s%s\n' "$DESTDIR" "$1"; }

# `install` ownership options, none when staging (no such user there).
owned() {
    staged || printf '%s\n' -o "${1%%:*}" -g "${1##*:}"
}

# ---- binary ----

build_binary() {
    [[ -f $SRC/Cargo.toml && -f $SRC/src/main.rs ]] ||
        die "not in a dockgate checkout ($SRC); pass --binary PATH"
    say "Building dockgate (cargo build --release) in $SRC"
    # shellcheck disable=SC2016 # expanded by the inner shell
    local cmd='cd "$1" && cargo build --release --locked'
    if [[ -n ${SUDO_USER:-} && $SUDO_USER != root ]]; then
        # Build as the invoking user: no root-owned files in their target/,
        # and their login shell's PATH finds rustup's cargo.
        run runuser -u "$SUDO_USER" -- bash -lc "$cmd" bash "$SRC"
    else
        command -v cargo >/dev/null || die "cargo not found; build elsewhere and pass --binary PATH"
        run bash -c "$cmd" bash "$SRC"
    fi
    binary=$SRC/target/release/dockgate
}

install_binary() {
    if [[ -z $binary ]]; then
        build_binary
    fi
    if $dry_run && [[ ! -x $binary ]]; then
        note "[dry-run] install $binary as $BIN"
        return
    fi
    [[ -x $binary ]] || die "$binary is not an executable"
    local version
    version=$("$binary" --version) || die "$binary does not run"
    if [[ -x $(at "$BIN") ]] && cmp -s "$binary" "$(at "$BIN")"; then
        say "$BIN is up to date ($version)"
    else
        say "Installing $BIN ($version)"
        # shellcheck disable=SC2046
        run install -D -m 0755 $(owned root:root) "$binary" "$(at "$BIN")"
        changed=true
    fi
    put "$MAN" 0644 root:root < <("$binary" man)
}

# The binary to run for checks: the installed one, or the new one in a dry run.
dockgate_bin() {
    if [[ -x $(at "$BIN") ]] && ! $dry_run; then
        at "$BIN"
    elif [[ -n $binary && -x $binary ]]; then
        echo "$binary"
    fi
}

# ---- user and directories ----

create_user() {
    staged && return
    getent group docker >/dev/null ||
        die "group 'docker' does not exist: install Docker Engine first"
    if getent passwd "$USER_NAME" >/dev/null; then
        say "User $USER_NAME exists"
    else
        say "Creating system user $USER_NAME"
        run useradd --system --user-group --home-dir "$STATE" --no-create-home \
            --shell /usr/sbin/nologin --comment "dockgate Docker API gateway" "$USER_NAME"
    fi
    # No `docker` membership in /etc/group: only the service gets it, through
    # SupplementaryGroups=docker in its unit, not every shell running as the user.
}

make_dirs() {
    say "Directories"
    local me=$USER_NAME:$USER_NAME
    # The config is root's; the gateway reads it.
    # shellcheck disable=SC2046
    run install -d -m 0750 $(owned "root:$USER_NAME") "$(at "$ETC")"
    # The gateway reads its key and signs client self-renewals: the certs
    # directory is its own. Run `dockgate pki` as this user.
    # shellcheck disable=SC2046
    run install -d -m 0700 $(owned "$me") "$(at "$CERTS")"
    # shellcheck disable=SC2046
    run install -d -m 0700 $(owned "$me") "$(at "$STATE")" "$(at "$STATE/clients")"
    # shellcheck disable=SC2046
    run install -d -m 0750 $(owned "$me") "$(at "$LOGS")"
}

# ---- config ----

# The built-in config, from the binary being installed.
shipped_config() {
    local bin shipped
    bin=$(dockgate_bin)
    [[ -n $bin ]] || die "no dockgate binary to take the built-in config from"
    shipped=$("$bin" config default) || die "$bin config default failed"
    local sed_args=(
        -e "s|^certs = .*|certs = \"$CERTS\"|"
        -e "s|^# path = \"/var/log/dockgate/audit.log\"|path = \"$AUDIT\"|"
    )
    if [[ -n $listen ]]; then
        sed_args+=(-e "s|^listen = .*|listen = \"$listen\"|")
    fi
    local text
    text=$(sed "${sed_args[@]}" <<<"$shipped")
    grep -qx "certs = \"$CERTS\"" <<<"$text" || die "cannot set certs in the built-in config"
    grep -qx "path = \"$AUDIT\"" <<<"$text" || die "cannot set audit.path in the built-in config"
    printf '%s\n' "$text"
}

install_config() {
    local bin
    bin=$(dockgate_bin)
    if [[ -f $(at "$CONFIG") ]]; then
        say "Keeping existing $CONFIG"
        grep -qx "certs = \"$CERTS\"" "$(at "$CONFIG")" ||
            warn "$CONFIG does not say certs = \"$CERTS\"; the unit and these instructions assume it"
        [[ -z $listen ]] || warn "--listen ignored: $CONFIG exists; edit its listen line"
        if [[ -n $bin ]]; then
            "$bin" policy check --config "$(at "$CONFIG")" >/dev/null ||
                die "$CONFIG does not pass 'dockgate policy check'"
        fi
        return
    fi
    say "Writing $CONFIG from the shipped config"
    local tmp
    tmp=$(mktemp)
    shipped_config >"$tmp"
    if [[ -n $bin ]] && ! "$bin" policy check --config "$tmp" >/dev/null; then
        rm -f "$tmp"
        die "the generated config does not pass 'dockgate policy check'"
    fi
    put "$CONFIG" 0640 "root:$USER_NAME" <"$tmp"
    rm -f "$tmp"
}

# ---- PKI ----

default_sans() {
    local name
    for name in "$(hostname -f 2>/dev/null || true)" "$(hostname 2>/dev/null || true)"; do
        [[ -n $name && $name != localhost* ]] && printf '%s\n' "$name"
    done
    # Global addresses, not those of Docker's bridges and veths.
    ip -o addr show scope global 2>/dev/null |
        awk '$2 !~ /^(docker|br-|veth|virbr)/ && !/temporary|deprecated/ { split($4, a, "/"); print a[1] }'
}

init_pki() {
    if staged; then
        note "no CA in $DESTDIR: make it on the host (run this script there, or dockgate pki init)"
        return
    fi
    local bin foreign=()
    bin=$(dockgate_bin)
    if getent passwd "$USER_NAME" >/dev/null; then
        mapfile -t foreign < <(find "$CERTS" ! -user "$USER_NAME" -print 2>/dev/null | head -n 5)
        if ((${#foreign[@]})); then
            warn "not owned by $USER_NAME, so the gateway may not read or update them:"
            printf '    %s\n' "${foreign[@]}"
            note "fix: chown -R $USER_NAME:$USER_NAME $CERTS"
        fi
    fi
    if [[ -f $CERTS/ca.pem ]]; then
        say "CA exists in $CERTS"
    else
        say "Creating a CA in $CERTS"
        as_dockgate "${bin:-$BIN}" pki init --dir "$CERTS"
        changed=true
    fi
    if [[ -f $CERTS/server-cert.pem ]]; then
        say "Server certificate exists in $CERTS"
        if ((${#sans[@]})); then
            note "--san ignored. To re-issue it with other names (clients must dial one of them):"
            note "  sudo -u $USER_NAME $BIN pki server --dir $CERTS$(printf ' --san %s' "${sans[@]}")"
        fi
        return
    fi
    if ((${#sans[@]} == 0)); then
        mapfile -t sans < <(default_sans | awk '!seen[$0]++')
        ((${#sans[@]})) || die "cannot guess this host's names; pass --san NAME_OR_IP"
        note "server certificate names (override with --san): ${sans[*]}"
    fi
    local args=() san
    for san in "${sans[@]}"; do
        args+=(--san "$san")
    done
    say "Issuing the server certificate"
    as_dockgate "${bin:-$BIN}" pki server --dir "$CERTS" "${args[@]}"
    changed=true
}

# ---- units ----

# A unit as shipped, with the binary and documentation where PREFIX puts them.
unit() {
    sed -e "s|/usr/local/bin/dockgate|$BIN|g" -e "s|/usr/local/share/doc/dockgate|$DOC|g" "$HERE/$1"
}

install_units() {
    say "systemd units, logrotate, documentation"
    put "$UNITS/dockgate.service" 0644 root:root < <(unit dockgate.service)
    put "$UNITS/dockgate-crl-refresh.service" 0644 root:root < <(unit dockgate-crl-refresh.service)
    put "$UNITS/dockgate-crl-refresh.timer" 0644 root:root < <(unit dockgate-crl-refresh.timer)
    if staged || [[ -d /etc/logrotate.d ]]; then
        put /etc/logrotate.d/dockgate 0644 root:root <"$HERE/dockgate.logrotate"
    fi
    put "$DOC/README.md" 0644 root:root <"$HERE/README.md"
    if have_systemd; then
        run systemctl daemon-reload
        run systemctl enable --quiet dockgate.service dockgate-crl-refresh.timer
        run systemctl start dockgate-crl-refresh.timer
    elif ! staged; then
        warn "systemd is not running here; enable the units yourself:"
        note "systemctl daemon-reload && systemctl enable --now dockgate.service dockgate-crl-refresh.timer"
    fi
}

# ---- dockerd's own TCP listener ----

# The text of docker.service and its drop-ins, in the order systemd applies them.
docker_unit_text() {
    if have_systemd; then
        systemctl cat docker.service 2>/dev/null || true
        return
    fi
    local dir main="" dropins=() seen=" " f base
    for dir in /etc/systemd/system /run/systemd/system /usr/local/lib/systemd/system \
        /lib/systemd/system /usr/lib/systemd/system; do
        [[ -z $main && -f $dir/docker.service ]] && main=$dir/docker.service
        for f in "$dir"/docker.service.d/*.conf; do
            [[ -f $f ]] || continue
            base=${f##*/}
            [[ $seen == *" $base "* ]] && continue
            seen+="$base "
            dropins+=("$f")
        done
    done
    [[ -n $main ]] || return 0
    cat "$main"
    if ((${#dropins[@]})); then
        printf '%s\n' "${dropins[@]}" | awk -F/ '{ print $NF "\t" $0 }' | sort | cut -f2- |
            while IFS= read -r f; do cat "$f"; done
    fi
}

# dockerd's effective ExecStart: the last one set after the last reset.
docker_exec_start() {
    docker_unit_text | awk '
        { line = line $0 }
        /\\$/ { sub(/\\$/, " ", line); next }
        { if (line ~ /^[ \t]*ExecStart[ \t]*=/) { sub(/^[ \t]*ExecStart[ \t]*=[ \t]*/, "", line); exec = line }
          line = "" }
        END { print exec }'
}

# EnvironmentFile= paths of docker.service (their variables feed ExecStart).
docker_env_files() {
    docker_unit_text | sed -n 's/^[ \t]*EnvironmentFile[ \t]*=[ \t]*-\{0,1\}//p'
}

# Prints the tcp:// hosts in a dockerd command line.
tcp_hosts_in_args() {
    local words i=0
    read -ra words <<<"$1"
    while ((i < ${#words[@]})); do
        case ${words[i]} in
        -H=tcp://* | --host=tcp://*) echo "${words[i]#*=}" ;;
        -Htcp://*) echo "${words[i]#-H}" ;;
        -H | --host) [[ ${words[i + 1]:-} == tcp://* ]] && echo "${words[i + 1]}" ;;
        esac
        i=$((i + 1))
    done
}

# The same command line without its tcp:// hosts.
without_tcp_hosts() {
    local words out=() i=0
    read -ra words <<<"$1"
    while ((i < ${#words[@]})); do
        case ${words[i]} in
        -H=tcp://* | --host=tcp://* | -Htcp://*) ;;
        -H | --host)
            if [[ ${words[i + 1]:-} == tcp://* ]]; then
                i=$((i + 1))
            else
                out+=("${words[i]}")
            fi
            ;;
        *) out+=("${words[i]}") ;;
        esac
        i=$((i + 1))
    done
    printf '%s\n' "${out[*]}"
}

daemon_json_tcp_hosts() {
    [[ -f $DAEMON_JSON ]] || return 0
    if command -v jq >/dev/null; then
        jq -r '(.hosts // [])[] | select(startswith("tcp://"))' "$DAEMON_JSON"
    elif command -v python3 >/dev/null; then
        python3 -c 'import json,sys
for h in json.load(open(sys.argv[1])).get("hosts") or []:
    if h.startswith("tcp://"): print(h)' "$DAEMON_JSON"
    else
        grep -o '"tcp://[^"]*"' "$DAEMON_JSON" | tr -d '"' || true
    fi
}

# Rewrites daemon.json without tcp:// hosts (dropping "hosts" if none remain).
daemon_json_without_tcp() {
    if command -v jq >/dev/null; then
        jq '.hosts |= map(select(startswith("tcp://") | not)) | if .hosts == [] then del(.hosts) else . end' "$DAEMON_JSON"
    elif command -v python3 >/dev/null; then
        python3 -c 'import json,sys
c = json.load(open(sys.argv[1]))
c["hosts"] = [h for h in c.get("hosts") or [] if not h.startswith("tcp://")]
if not c["hosts"]: del c["hosts"]
print(json.dumps(c, indent=2))' "$DAEMON_JSON"
    else
        return 1
    fi
}

check_dockerd_tcp() {
    staged && return
    say "Looking for dockerd's own TCP listener"
    local exec_start json_hosts unit_hosts env_hits=() f found=false
    exec_start=$(docker_exec_start)
    unit_hosts=$(tcp_hosts_in_args "$exec_start")
    json_hosts=$(daemon_json_tcp_hosts)
    while IFS= read -r f; do
        [[ -n $f && -f $f ]] && grep -Eq '^[^#]*tcp://' "$f" && env_hits+=("$f")
    done < <(docker_env_files)
    for f in /etc/default/docker /etc/sysconfig/docker; do
        [[ -f $f ]] && grep -Eq '^[^#]*tcp://' "$f" && [[ " ${env_hits[*]} " != *" $f "* ]] && env_hits+=("$f")
    done

    if [[ -n $unit_hosts ]]; then
        found=true
        note "docker.service runs: $exec_start"
        note "  tcp listener(s): $(tr '\n' ' ' <<<"$unit_hosts")"
    fi
    if [[ -n $json_hosts ]]; then
        found=true
        note "$DAEMON_JSON \"hosts\": $(tr '\n' ' ' <<<"$json_hosts")"
    fi
    if ((${#env_hits[@]})); then
        found=true
        note "environment file(s) with tcp:// (feeding dockerd's options): ${env_hits[*]}"
    fi
    if ! $found; then
        note "none configured"
        return
    fi

    if ! $disable_dockerd_tcp; then
        warn "dockerd serves the API on TCP itself, beside dockgate: every client that reaches it bypasses dockgate's policy, and it holds the port dockgate wants."
        note "Remove the tcp:// hosts (and, now unused, --tls* options) from the places listed above,"
        note "or re-run with --disable-dockerd-tcp to have it done (with a backup), then:"
        note "  systemctl daemon-reload && systemctl restart docker && systemctl start dockgate"
        return
    fi

    if [[ -n $json_hosts ]]; then
        local new backup
        new=$(daemon_json_without_tcp) || die "editing $DAEMON_JSON needs jq or python3; remove its tcp:// hosts by hand"
        backup=$DAEMON_JSON.dockgate-backup.$(date +%Y%m%d%H%M%S)
        say "Removing tcp:// hosts from $DAEMON_JSON (backup: $backup)"
        run cp -p "$DAEMON_JSON" "$backup"
        printf '%s\n' "$new" | put "$DAEMON_JSON" 0644 root:root
    fi
    if [[ -n $unit_hosts ]]; then
        if [[ $exec_start == *[\'\"]* ]]; then
            die "docker.service's ExecStart uses quotes; remove its tcp:// hosts by hand (systemctl edit docker)"
        fi
        local new_exec
        new_exec=$(without_tcp_hosts "$exec_start")
        say "Overriding dockerd's ExecStart without tcp:// hosts in $DOCKER_DROPIN"
        note "new ExecStart: $new_exec"
        [[ -f $DOCKER_DROPIN ]] && run cp -p "$DOCKER_DROPIN" "$DOCKER_DROPIN.dockgate-backup.$(date +%Y%m%d%H%M%S)"
        printf '# Written by dockgate install.sh --disable-dockerd-tcp: dockgate serves the\n# API on TCP. Delete this file to restore the previous command line.\n[Service]\nExecStart=\nExecStart=%s\n' \
            "$new_exec" | put "$DOCKER_DROPIN" 0644 root:root
        if ! $dry_run && [[ -n $(tcp_hosts_in_args "$(docker_exec_start)") ]]; then
            die "a later drop-in still sets dockerd's ExecStart with tcp:// hosts: systemctl cat docker"
        fi
    fi
    if ((${#env_hits[@]})); then
        warn "not editing ${env_hits[*]}: remove the tcp:// hosts there by hand"
    fi
    if have_systemd; then
        run systemctl daemon-reload
    fi
    warn "restart dockerd to close its TCP listener: systemctl restart docker"
    note "(running containers stop unless \"live-restore\": true is set in $DAEMON_JSON)"
}

# ---- start ----

listen_port() {
    local addr
    addr=$(sed -n 's/^listen = "\(.*\)"/\1/p' "$CONFIG" 2>/dev/null | head -n1)
    addr=${addr:-0.0.0.0:2376}
    echo "${addr##*:}"
}

start_service() {
    staged && return
    if ! $start; then
        note "not starting (--no-start): systemctl start dockgate"
        return
    fi
    if ! have_systemd; then
        return
    fi
    local port busy
    port=$(listen_port)
    busy=$(ss -Hltnp "sport = :$port" 2>/dev/null || true)
    if [[ -n $busy && $busy != *'"dockgate"'* ]]; then
        warn "port $port is in use, so dockgate is enabled but not started:"
        note "$busy"
        note "free it (see above for dockerd), then: systemctl start dockgate"
        return
    fi
    if systemctl is-active --quiet dockgate.service && $changed; then
        say "Restarting dockgate (binary, units or certificates changed)"
        run systemctl restart dockgate.service
    else
        say "Starting dockgate"
        run systemctl start dockgate.service
    fi
    if ! $dry_run; then
        sleep 1
        systemctl is-active --quiet dockgate.service ||
            die "dockgate did not start: journalctl -u dockgate -n 50"
    fi
}

next_steps() {
    if staged; then
        say "Installed into $DESTDIR"
        return
    fi
    local host=${sans[0]:-$(hostname -f 2>/dev/null || hostname)} done="is installed"
    $dry_run && done="would be installed (dry run)"
    cat <<EOF

dockgate $done. Next steps:

  # Issue a client certificate. Run dockgate pki as the $USER_NAME user: the
  # gateway owns $CERTS. Roles are in $CONFIG.
  sudo -u $USER_NAME $BIN pki client --dir $CERTS \\
      --name alice --role admin --out $STATE/clients/alice
  # Hand alice that directory's ca.pem, cert.pem and key.pem, then delete it.
  # She runs:
  #   export DOCKER_HOST=tcp://$host:$(listen_port) DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=DIR
  #   docker version

  # What was issued; the service log; the audit log (one JSON line per request):
  sudo -u $USER_NAME $BIN pki list --dir $CERTS
  journalctl -u dockgate -f
  tail -f $AUDIT

More: $DOC/README.md
EOF
}

main() {
    parse_args "$@"
    if ! $dry_run && ! staged; then
        ((EUID == 0)) || die "run as root (or try --dry-run or --destdir)"
    fi
    $dry_run && say "Dry run: nothing will be changed"
    install_binary
    create_user
    make_dirs
    install_config
    init_pki
    install_units
    check_dockerd_tcp
    start_service
    next_steps
}

main "$@"
