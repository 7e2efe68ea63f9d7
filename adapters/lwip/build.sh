#!/bin/sh
# Builds the tcptwin DUT adapter for lwIP into adapters/lwip/build/tcptwin-lwip-adapter.
# Needs gcc and Debian's liblwip-dev (headers in /usr/include/lwip, -llwip):
#   apt-get install -y gcc libc6-dev liblwip-dev   (libc6-dev: only a Recommends of gcc)
# LWIP_CFLAGS / LWIP_LIBS override where lwIP is found (default: Debian's paths).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/build"
CC=${CC:-gcc}
LWIP_CFLAGS=${LWIP_CFLAGS:--I/usr/include/lwip}
LWIP_LIBS=${LWIP_LIBS:--llwip}
set -x
"$CC" -std=gnu11 -O2 -g -Wall -Wextra $LWIP_CFLAGS \
    -o "$here/build/tcptwin-lwip-adapter" "$here/tcptwin_lwip_adapter.c" \
    $LWIP_LIBS -lpthread
