"""Services on this host: start, stop and restart processes Jarvis started itself."""
