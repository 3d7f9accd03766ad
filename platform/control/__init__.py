"""The quality-tier controller: each camera's tier from its link statistics, within caps."""
