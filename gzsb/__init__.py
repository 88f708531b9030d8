"""Online registration service for the Tianjin 高职升本 exam."""
