"""bench turns data into measurements: plumbing -> data -> train -> measure -> harness -> gate."""
