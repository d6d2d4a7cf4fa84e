"""Pattern 2, continuous evaluation: every commit of the model repositories, trained and scored."""
