#!/bin/sh
# Write slmclient.pc: the template on stdin, with the install prefix given
# as $1 and the version from common/version.h.
set -eu
prefix=$1
version=$(sed -n 's/^#define SLM_VERSION "\(.*\)"/\1/p' common/version.h)
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|"
