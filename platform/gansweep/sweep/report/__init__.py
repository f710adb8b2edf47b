"""`gansweep report`: one table and plots for a sweep directory (the entry point: report.write.write_report)."""
