"""FT-Bench task specifications, offline mini tasks and their data, and the task registry."""
