#!/bin/bash
# sshd-up.sh - a private OpenSSH server on 127.0.0.1 for the ssh tests (Debian openssh-server, as root).
# Used by the sshd fixture (tests/providers/conftest.py); adapted from shared/lab/README.md.
# Everything lives in $DIR: host key, client key (id_ed25519), authorized_keys, known_hosts,
# sshd_config, sshd.pid, sshd.log. Idempotent: keys are kept, a running server is left alone.
#   DIR=/tmp/t/sshd PORT=2222 bash sshd-up.sh      stop: kill "$(cat $DIR/sshd.pid)"
set -euo pipefail
DIR=${DIR:?set DIR to a directory for the server state}
PORT=${PORT:-2222}
if [ ! -x /usr/sbin/sshd ] || ! command -v ssh-keygen >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends openssh-server >/dev/null
fi
mkdir -p -m 0755 /run/sshd          # privilege separation directory
mkdir -p "$DIR"; chmod 700 "$DIR"
[ -s "$DIR/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C cf-test-host -f "$DIR/host_ed25519"
[ -s "$DIR/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C cf-test-client -f "$DIR/id_ed25519"
cp "$DIR/id_ed25519.pub" "$DIR/authorized_keys"
echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$DIR/host_ed25519.pub")" > "$DIR/known_hosts"
cat > "$DIR/sshd_config" <<EOF
Port $PORT
ListenAddress 127.0.0.1
HostKey $DIR/host_ed25519
PidFile $DIR/sshd.pid
AuthorizedKeysFile $DIR/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxSessions 50
MaxStartups 50:30:100
Subsystem sftp internal-sftp
EOF
/usr/sbin/sshd -t -f "$DIR/sshd_config"
if [ -s "$DIR/sshd.pid" ] && kill -0 "$(cat "$DIR/sshd.pid")" 2>/dev/null; then
  echo "sshd already running (pid $(cat "$DIR/sshd.pid")) on 127.0.0.1:$PORT"; exit 0
fi
/usr/sbin/sshd -f "$DIR/sshd_config" -E "$DIR/sshd.log"     # daemonizes; pid in $DIR/sshd.pid
end=$((SECONDS + ${READY_TIMEOUT:-60}))      # at once when idle; polling, for a loaded machine
until [ -s "$DIR/sshd.pid" ] && (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
  [ $SECONDS -lt $end ] || break
  sleep 0.05
done
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || { echo "sshd did not start:" >&2; cat "$DIR/sshd.log" >&2; exit 1; }
ssh -F /dev/null -p "$PORT" -i "$DIR/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=60 \
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$DIR/known_hosts" root@127.0.0.1 true
echo "sshd up (pid $(cat "$DIR/sshd.pid")) on 127.0.0.1:$PORT; key $DIR/id_ed25519, known_hosts $DIR/known_hosts"
