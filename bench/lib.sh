# lib.sh - what the bench scripts share (source it): process checks and
# waiting, on /proc and bash's SECONDS only.

# alive PID: the process exists and is not a zombie
alive() {
    local st
    st=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z && $st != X ]]
}
not_alive() { ! alive "$1"; }

# wait_for SECONDS COMMAND...: runs COMMAND every 50 ms until it succeeds;
# fails once SECONDS (+1) have passed
wait_for() {
    local deadline=$((SECONDS + $1 + 1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.05
    done
}
