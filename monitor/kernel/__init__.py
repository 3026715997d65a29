"""cgroup v2 and /proc: pure parsers of kernel files, and thin operations on cgroupfs."""
