"""Business alerts (silent device, low mask compliance): pure evaluation (``evaluate``), message text
(``messages``), the scheduled Lambda adapter (``handler``) and the query texts it runs (``queries``, synth and local
use only)."""
