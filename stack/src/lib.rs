//! tcptwin-stack: a sans-IO TCP/IP stack whose active open mirrors Linux 6.18.
