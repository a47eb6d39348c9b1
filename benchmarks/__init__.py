"""fgbench: reproduction suite for forward-gradient papers (Ren 2023, Fournier 2023, Bacho & Chu 2024)."""
