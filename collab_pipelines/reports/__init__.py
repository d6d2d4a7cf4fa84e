"""Pattern 3, report templating: notebooks with a parameters cell, rendered per partition."""
