#!/usr/bin/env bash
# Writes the King James Bible (Debian's bible-kjv-text, decoded by bible-kjv's `bible`) as plain text
# for training: one chapter per paragraph ("Genesis 1" then one verse per line, verse numbers
# stripped), chapters separated by a blank line, so `holdfast data prepare --split-blank-lines`
# makes each chapter a document. No network.
# Usage: scripts/prepare_corpus.sh [OUT]   (default: runs/kjv.txt; runs/ is git-ignored)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/kjv.txt}"
if ! command -v bible >/dev/null 2>&1 || [ ! -f /usr/lib/bible.data ]; then
  echo "prepare_corpus.sh: needs the bible-kjv and bible-kjv-text packages (scripts/install-deps.sh)" >&2
  exit 1
fi
mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
# Pretty mode prints "Book N" headings and "  V text" verses; -l 1000000 keeps every verse on one line.
bible -p /usr/lib -l 1000000 'Gen1:1-Rev22:21' </dev/null |
  awk '
    /^[[:space:]]*$/ { next }
    /^ +[0-9]+ / { sub(/^ +[0-9]+ /, ""); print; verses++; next }
    { if (chapters++) print ""; print }
    END {
      if (chapters != 1189 || verses != 31102) {
        printf "prepare_corpus.sh: expected 1189 chapters and 31102 verses, got %d and %d\n", chapters, verses > "/dev/stderr"
        exit 1
      }
    }' >"$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "prepare_corpus.sh: wrote $out ($(wc -c <"$out") bytes, 1189 chapters, 31102 verses)" >&2
