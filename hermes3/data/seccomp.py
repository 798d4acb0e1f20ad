"""The sandbox's seccomp filter: model-written code may not create Unix sockets (``hermes3.data.sandbox``)."""

from __future__ import annotations

# Defence in depth: even with no host socket in its view, the code may not create Unix
# sockets. A classic-BPF seccomp filter written here by hand (no libseccomp binding to
# install and pin; 19 instructions, checked by ``tests/test_sandbox.py::test_seccomp_program``) and installed by hermes3.data.sandbox's launcher
# with prctl(PR_SET_SECCOMP) just before the code starts, so that bwrap and unshare get the
# same filter from the same line (bwrap's ``--seccomp FD`` would cover bwrap only):
#   socket(AF_UNIX, ...)                      -> EACCES
#   socketpair(AF_UNIX, not SOCK_STREAM, ...) -> EACCES  (a datagram pair could sendto() a path)
#   socketpair(AF_UNIX, SOCK_STREAM, ...)     -> allowed: already connected, it can neither
#       connect() (EISCONN) nor listen(); asyncio's event loop and multiprocessing.Pipe need it
#   io_uring_setup                            -> EPERM   (IORING_OP_SOCKET/CONNECT bypass socket())
#   another ABI (i386 int 0x80, x32)          -> process killed (their socket calls have other numbers)
# Python's own startup creates no socket at all. Machines other than x86_64 and aarch64 get
# no filter (the mount set still holds).
SECCOMP_ARCH = {  # AUDIT_ARCH_*, socket, socketpair, io_uring_setup, first x32 syscall
    "x86_64": (0xC000003E, 41, 53, 425, 0x40000000),
    "aarch64": (0xC00000B7, 198, 199, 425, None),
}


def seccomp_filter(machine: str | None = None) -> bytes:
    """The filter above as ``struct sock_filter[]`` bytes (b"" on other machines)."""
    import platform
    import struct

    spec = SECCOMP_ARCH.get(machine or platform.machine())
    if spec is None:
        return b""
    arch, nr_socket, nr_pair, nr_uring, x32 = spec
    ld, jeq, jge, and_, ret = 0x20, 0x15, 0x35, 0x54, 0x06  # BPF_LD|W|ABS, JMP|JEQ|K, JMP|JGE|K, ALU|AND|K, RET|K
    allow, kill, errno = 0x7FFF0000, 0x80000000, 0x00050000  # SECCOMP_RET_ALLOW, KILL_PROCESS, ERRNO
    nr, arch_off, arg0, arg1 = 0, 4, 16, 24  # struct seccomp_data (low halves of the args: little-endian)
    prog = [(ld, arch_off), (jeq, arch, 0, "kill"), (ld, nr),
            *([(jge, x32, "kill", 0)] if x32 else []),
            (jeq, nr_socket, "socket", 0), (jeq, nr_pair, "pair", 0), (jeq, nr_uring, "eperm", 0),
            (ret, allow),
            "socket", (ld, arg0), (jeq, 1, "eacces", "allow"),  # AF_UNIX = 1
            "pair", (ld, arg0), (jeq, 1, 0, "allow"), (ld, arg1), (and_, 0xF), (jeq, 1, "allow", "eacces"),  # SOCK_STREAM
            "allow", (ret, allow), "eacces", (ret, errno | 13), "eperm", (ret, errno | 1), "kill", (ret, kill)]
    labels, n = {}, 0
    for ins in prog:
        if isinstance(ins, str):
            labels[ins] = n
        else:
            n += 1
    out, i = [], 0
    for ins in prog:
        if isinstance(ins, str):
            continue
        code, k, jt, jf = (*ins, 0, 0)[:4]
        jt, jf = (labels[j] - i - 1 if isinstance(j, str) else j for j in (jt, jf))
        out.append(struct.pack("<HBBI", code, jt, jf, k))
        i += 1
    return b"".join(out)
