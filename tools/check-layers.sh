#!/usr/bin/env bash
# The folders of host/ are layers, lowest first. A file may include headers of
# its own folder and of the folders below it, never of one above: a lower layer
# calls back through a function it was given instead of naming the code above.
# Upward includes not yet untangled are listed in tools/layers-debt.txt; the
# check fails on any other, and on a listed one that no longer exists (so the
# list only shrinks). Prints every include it refused, or one line "ok".
set -uo pipefail
cd "$(dirname "$0")/.."
LAYERS=(include proto runtime services server lua cli)
debt=tools/layers-debt.txt

rank() {   # rank FOLDER → its position in LAYERS
    local i
    for i in "${!LAYERS[@]}"; do [[ ${LAYERS[$i]} == "$1" ]] && { echo "$i"; return; }; done
    echo -1
}

declare -A home   # header name → the folder it lives in
for layer in "${LAYERS[@]}"; do
    for hdr in host/"$layer"/*.h; do
        [[ -e $hdr ]] || continue
        name=$(basename "$hdr")
        if [[ -n ${home[$name]:-} ]]; then
            echo "two headers named $name: host/${home[$name]} and host/$layer"; exit 1
        fi
        home[$name]=$layer
    done
done

bad=0
found=$(mktemp)
trap 'rm -f "$found"' EXIT
for layer in "${LAYERS[@]}"; do
    own=$(rank "$layer")
    for src in host/"$layer"/*.[ch]; do
        [[ -e $src ]] || continue
        while read -r name; do
            to=${home[$name]:-}
            [[ -n $to ]] || continue          # a system or library header
            (( $(rank "$to") <= own )) && continue
            line="$src -> $name ($to)"
            echo "$line" >>"$found"
            if ! grep -qxF "$line" "$debt"; then
                echo "upward include: $src includes $name, which is in host/$to"
                bad=1
            fi
        done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$src")
    done
done
while read -r line; do
    [[ -z $line || $line == \#* ]] && continue
    if ! grep -qxF "$line" "$found"; then
        echo "listed in $debt but gone (delete the line): $line"
        bad=1
    fi
done <"$debt"
if [[ $bad == 0 ]]; then
    echo "ok: host/ layers ${LAYERS[*]}; $(grep -vc '^#' "$debt" || true) upward includes still listed in $debt"
fi
exit "$bad"
