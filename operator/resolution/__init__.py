"""Pure resolution of MemoryReservePolicy objects into one NodeMemoryReserve per node."""
