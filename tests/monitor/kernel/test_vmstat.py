import pytest

from oomguard.monitor.kernel.vmstat import VmstatParseError, parse_vmstat

# The head and the oom_kill line of Debian 6.1's /proc/vmstat.
KERNEL_6_1 = (
    b"nr_free_pages 1709385\nnr_zone_inactive_anon 3\nnr_zone_active_anon 86412\n"
    b"pgfault 123456789\noom_kill 2\nnuma_hit 0\n"
)


def test_parses_a_real_kernel_file():
    vmstat = parse_vmstat(KERNEL_6_1)
    assert vmstat.oom_kill == 2
    assert vmstat.counters["pgfault"] == 123456789


def test_missing_oom_kill_is_an_error_not_a_zero():
    vmstat = parse_vmstat(b"nr_free_pages 1\n", "/proc/vmstat")
    with pytest.raises(VmstatParseError, match="oom_kill"):
        _ = vmstat.oom_kill


@pytest.mark.parametrize("data", [b"oom_kill -1\n", b"oom_kill\n", b"oom_kill 1\noom_kill 2\n"])
def test_junk_is_refused(data):
    with pytest.raises(VmstatParseError):
        parse_vmstat(data)
