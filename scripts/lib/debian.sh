# Sourced by scripts/run and scripts/test: installs the Debian packages a command needs.

# ensure_debian_packages WHO PACKAGE...: installs the PACKAGEs that are missing when run as
# root; otherwise names them and exits, so a fresh machine needs no manual step as root and a
# non-root user gets the exact command to run.
ensure_debian_packages() {
  local who=$1
  shift
  local missing=()
  local p
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "$who: missing Debian packages: ${missing[*]}" >&2
    echo "$who: run as root, or first: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "$who: installing Debian packages: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# What building Chorus links against: libopus (with its pkg-config file) for chorus-codecs'
# Opus, found through pkg-config by audiopus_sys. Without them audiopus_sys falls back to
# building its bundled libopus with autotools (autoreconf), which a fresh machine lacks.
# g++: chorus-codecs' H.264 builds OpenH264's C++ from source (the openh264 crate, via cc).
build_packages=(pkg-config libopus-dev g++)
