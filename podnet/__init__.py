"""podnet: the command-line front end and the pieces a person drives (labs, capture, trace)."""
