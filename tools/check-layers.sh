#!/usr/bin/env bash
# The folders of host/ are layers, lowest first. A file may include headers of
# its own folder and of the folders below it, never of one above: a lower layer
# calls back through a function it was given instead of naming the code above.
# Services hold no Lua: their Lua faces live in host/lua/, so host/services/
# may neither include Lua's headers nor call its API.
# Prints every include or call it refused, or one line "ok".
set -uo pipefail
cd "$(dirname "$0")/.."
LAYERS=(include proto runtime services server lua cli)

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
for layer in "${LAYERS[@]}"; do
    own=$(rank "$layer")
    for src in host/"$layer"/*.[ch]; do
        [[ -e $src ]] || continue
        while read -r name; do
            to=${home[$name]:-}
            [[ -n $to ]] || continue          # a system or library header
            (( $(rank "$to") <= own )) && continue
            echo "upward include: $src includes $name, which is in host/$to"
            bad=1
        done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$src")
    done
done
while IFS= read -r hit; do
    echo "Lua in a service (its Lua face belongs in host/lua/): $hit"
    bad=1
done < <(grep -nE '#[[:space:]]*include[[:space:]]*<(lua|lauxlib|lualib)\.h>|\blua(L)?_[a-z_]+[[:space:]]*\(' \
             host/services/*.[ch] || true)
if [[ $bad == 0 ]]; then
    echo "ok: host/ layers ${LAYERS[*]}, no upward include, no Lua in host/services"
fi
exit $bad
