#!/usr/bin/env bash
# The Temporal time-skipping test server for the workflow tests (tests/workflows): the Java test
# server from Maven Central, with the dependencies pinned in test-server.jars, run by the JRE.
# Downloaded once into $PLAT_CACHE; a Java runtime is installed from Debian when none is there.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TEST_SERVER_DIR="$PLAT_CACHE/temporal-test-server"
TEST_SERVER_BIN="$TEST_SERVER_DIR/run"
MAVEN_CENTRAL="${MAVEN_CENTRAL:-https://repo.maven.apache.org/maven2}"

ensure_test_server() {
  step "temporal test server (workflow tests)"
  if ! command -v java >/dev/null; then
    need_root_for "a Java runtime"
    note "installing Debian's openjdk-17-jre-headless"
    apt_install openjdk-17-jre-headless
  fi
  local list="$ROOT/scripts/test-server.jars" key
  key="$(md5sum <"$list" | cut -c1-12)"
  if [ "$(cat "$TEST_SERVER_DIR/.key" 2>/dev/null)" != "$key" ]; then
    note "fetching the test server's jars from Maven Central (once)"
    rm -rf "$TEST_SERVER_DIR"
    mkdir -p "$TEST_SERVER_DIR/lib"
    local coordinate sum group artifact version file
    while read -r coordinate sum; do
      case "$coordinate" in '' | '#'*) continue ;; esac
      IFS=: read -r group artifact version <<<"$coordinate"
      file="$TEST_SERVER_DIR/lib/$artifact-$version.jar"
      curl -fsS --retry 3 --max-time 120 -o "$file" \
        "$MAVEN_CENTRAL/${group//.//}/$artifact/$version/$artifact-$version.jar" >>"$LOG_DIR/test-server.log" 2>&1 ||
        die "test server" "$LOG_DIR/test-server.log" "could not download $coordinate"
      echo "$sum  $file" | sha256sum -c --quiet - >>"$LOG_DIR/test-server.log" 2>&1 ||
        die "test server" "$LOG_DIR/test-server.log" "$coordinate does not match its pinned sha256"
    done <"$list"
    # TestWorkflowEnvironment runs `run PORT`; the server answers on that port until it is killed.
    cat >"$TEST_SERVER_BIN" <<RUN
#!/bin/sh
exec java -Xshare:auto -XX:TieredStopAtLevel=1 -cp "$TEST_SERVER_DIR/lib/*" io.temporal.testserver.TestServer "\$@"
RUN
    chmod +x "$TEST_SERVER_BIN"
    echo "$key" >"$TEST_SERVER_DIR/.key"
  fi
  export PLAT_TEST_SERVER="$TEST_SERVER_BIN"
  ok "test server: $TEST_SERVER_BIN ($(java -version 2>&1 | head -1))"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then ensure_test_server; fi
