"""From feature vectors to scores, grades, reasons and score events: one path for every caller."""
