"""Running a task over items: the contract, the local process pool and Ray."""
