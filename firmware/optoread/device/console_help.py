"""The console's ``help`` text: loaded for the command and dropped again (its ~1.2 KB of strings
are not on the heap while a reading runs).

Every command of ``device.console`` has its line here; ``[PIN]`` marks those that need the device
PIN (``unlock PIN`` first).
"""

LINES = (
    "optoread console commands:",
    "  status                      free space, sessions, not downloaded, clock, free heap",
    "  read [PLAN] [--meter ID]    read a meter now (default plan from config)",
    "  list                        stored sessions",
    "  show N                      the values of session N",
    "  plans                       reading plans on the device",
    "  meters                      meters seen before (what worked)",
    "  config get [KEY]            settings (secrets shown as ***)",
    "  config set KEY VALUE        change a setting",
    "  clock set YYYY-MM-DDTHH:MM:SS",
    "  erase --yes [--force]       delete downloaded sessions (--force: all of them)  [PIN]",
    "  pin set NEW                 choose the device PIN (4-12 digits; changing it: [PIN])",
    "  unlock PIN | lock           allow the commands marked [PIN] for 5 minutes | end that",
    "  maintenance                 leave the firmware for the REPL (deploy uses it)  [PIN]",
    "  @hello @list @get @ack      machine commands for `optoread download`",
    "  config set of a secret and clock set also need [PIN]",
)
