"""The process around the application: logging, migrations, timers, the embedded database
and the demo seed."""
