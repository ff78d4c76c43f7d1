"""A run's life on the app side: submitted (`submission`, `service`), recorded as its runner reports
(`recorder`), recovered after a restart (`recovery`), followed (`events`, `inflight`), its inputs checked and kept
(`inputs`, `stored`), its outputs stored (`storage`), its webhook delivered (`deliveries`, `webhooks`), and shown
(`views`, with what it needs of app versions from `versions`)."""
