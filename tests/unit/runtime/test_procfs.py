"""Reading a container's processes from /proc text: the pure parsers and the sampler
over a /proc and cgroup tree laid out in tmp_path (the files a real host has)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from ferry.model.processes import MAX_PROCESSES, MAX_TEXT, ListenSocket
from ferry.runtime.process_sampler import ProcessSampler
from ferry.runtime.procfs import (
    cpu_percent,
    decode_address,
    parse_cmdline,
    parse_listening,
    parse_nspid,
    parse_stat,
    read_pids,
    socket_inode,
)

# /proc/<pid>/stat of `sleep 1000` whose comm has a space and a parenthesis in it.
STAT = (
    "4242 (we ird) name) S 4240 4242 4240 0 -1 4194560 98 0 0 0 "
    "7 3 0 0 20 0 1 0 123456 3133440 381 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1"
)
TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5001 1 0
   1: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5002 1 0
   2: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 5003 1 0
"""
TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:8A1D 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6001 1 0
   1: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6002 1 0
"""  # noqa: E501


def test_stat_fields_survive_a_comm_with_spaces_and_parentheses() -> None:
    fields = parse_stat(STAT)
    assert fields.comm == "we ird) name"
    assert (fields.utime, fields.stime, fields.cpu_ticks) == (7, 3, 10)
    assert (fields.starttime, fields.rss_pages) == (123456, 381)


@pytest.mark.parametrize("text", ["", "4242 sleep S 1", "4242 (sleep) S 1 2 3"])
def test_a_garbled_stat_line_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_stat(text)


def test_the_pid_inside_the_container_is_the_last_nspid() -> None:
    assert parse_nspid("Name:\tsleep\nPid:\t4242\nNSpid:\t4242\t7\n") == 7
    assert parse_nspid("Name:\tsleep\nPid:\t4242\nNSpid:\t4242\n") == 4242
    assert parse_nspid("Name:\tsleep\n") is None


def test_cmdline_joins_arguments_and_shows_comm_when_there_is_none() -> None:
    assert parse_cmdline(b"sh\0-c\0sleep 1000 & wait\0", "sh") == "sh -c sleep 1000 & wait"
    assert parse_cmdline(b"", "kworker") == "[kworker]"
    assert len(parse_cmdline(b"x" * 5000 + b"\0", "x")) == MAX_TEXT


def test_addresses_decode_as_the_kernel_prints_them() -> None:
    assert decode_address("0100007F:1F90", "tcp") == "127.0.0.1:8080"
    assert decode_address("00000000000000000000000001000000:8A1D", "tcp6") == "[::1]:35357"
    with pytest.raises(ValueError):
        decode_address("0100:1F90", "tcp")


def test_only_listening_sockets_are_kept_by_inode() -> None:
    assert parse_listening(TCP, "tcp") == {
        5001: ListenSocket(proto="tcp", address="0.0.0.0:8080"),
        5002: ListenSocket(proto="tcp", address="127.0.0.1:22"),
    }
    assert parse_listening(TCP6, "tcp6")[6002] == ListenSocket(proto="tcp6", address="[::]:80")
    with pytest.raises(ValueError):
        parse_listening("header\n 0: 00000000:1F90 00000000:0000 0A\n", "tcp")


def test_socket_links_give_their_inode() -> None:
    assert socket_inode("socket:[5001]") == 5001
    assert socket_inode("/dev/null") is None
    assert socket_inode("socket:[x]") is None


def test_cpu_percent_is_of_one_core_between_two_samples() -> None:
    assert cpu_percent(100, 150, 1.0, 100) == 50
    assert cpu_percent(100, 300, 1.0, 100) == 200  # two cores busy
    assert cpu_percent(100, 150, 0.0, 100) == 0
    assert cpu_percent(150, 100, 1.0, 100) == 0  # pid reused: no negative figure


def test_pids_come_from_the_first_hierarchy_that_has_the_cgroup(tmp_path: Path) -> None:
    (tmp_path / "memory").mkdir()
    many = "\n".join(str(p) for p in range(1000, 1000 + MAX_PROCESSES + 10))
    (tmp_path / "memory" / "cgroup.procs").write_text(many + "\n")
    assert read_pids([tmp_path / "pids", tmp_path / "memory"]) == list(
        range(1000, 1000 + MAX_PROCESSES)
    )
    assert read_pids([tmp_path / "gone"]) == []


def _fake_process(proc: Path, pid: int, argv: bytes, ticks: int, fds: dict[str, str]) -> None:
    base = proc / str(pid)
    (base / "fd").mkdir(parents=True)
    (base / "net").mkdir()
    stat = f"{pid} (x) S 1 1 1 0 -1 0 0 0 0 0 {ticks} 0 0 0 20 0 1 0 {5 * 100} 1 10 0"
    (base / "stat").write_text(stat)
    (base / "cmdline").write_bytes(argv)
    (base / "status").write_text(f"Name:\tx\nPid:\t{pid}\nNSpid:\t{pid}\t{pid - 6}\nPPid:\t1\n")
    os.symlink("/app", base / "cwd")
    for fd, target in fds.items():
        os.symlink(target, base / "fd" / fd)
    (base / "net" / "tcp").write_text(TCP)


def test_the_sampler_reads_a_containers_processes(tmp_path: Path) -> None:
    proc, cgroups = tmp_path / "proc", tmp_path / "cgroup"
    proc.mkdir()
    (proc / "stat").write_text("cpu  1 2 3\nbtime 1700000000\n")
    (cgroups / "pids" / "ferry" / "c1").mkdir(parents=True)
    (cgroups / "pids" / "ferry" / "c1" / "cgroup.procs").write_text("7\n9\n")
    _fake_process(proc, 7, b"sh\0-c\0sleep 1000 & wait\0", 10, {"0": "/dev/null"})
    _fake_process(proc, 9, b"httpd\0-p\08080\0", 20, {"3": "socket:[5001]", "4": "pipe:[1]"})
    now = [100.0]
    asked: list[list[str]] = []

    def no_sock_diag(paths: Sequence[str]) -> dict[str, None]:
        asked.append(list(paths))
        return {path: None for path in paths}  # as without privilege: /proc/net/tcp is read

    sampler = ProcessSampler(
        proc=proc,
        cgroup_root=cgroups,
        clock=lambda: now[0],
        wall_clock=lambda: 1700000100.5,
        listening=no_sock_diag,
    )
    first = sampler.sample(["/ferry/c1", "/ferry/gone"])
    assert first["/ferry/gone"] == []
    assert asked == [[f"{proc}/7/ns/net"]]  # one namespace per machine, through its first pid
    shell, httpd = first["/ferry/c1"]
    assert (shell.pid, httpd.pid) == (1, 3)  # as the container sees them
    hertz = os.sysconf("SC_CLK_TCK")
    assert shell.command == "sh -c sleep 1000 & wait" and shell.directory == "/app"
    assert shell.stime == 1700000000 + 500 // hertz
    assert shell.rtime == 1700000100 - shell.stime
    assert shell.rss == 10 * os.sysconf("SC_PAGE_SIZE")
    assert (shell.cpu, shell.listen_sockets) == (0, [])
    assert httpd.listen_sockets == [ListenSocket(proto="tcp", address="0.0.0.0:8080")]
    # A second sample a second later: the httpd used `hertz` more ticks, one whole core.
    (proc / "9" / "stat").write_text(
        f"9 (x) S 1 1 1 0 -1 0 0 0 0 0 {20 + hertz} 0 0 0 20 0 1 0 500 1 10 0"
    )
    now[0] = 101.0
    _, httpd = sampler.sample(["/ferry/c1"])["/ferry/c1"]
    assert httpd.cpu == 100
