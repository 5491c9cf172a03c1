"""Reading finished studies back: the summary, its tables and plot, export, reproduce and delete."""
