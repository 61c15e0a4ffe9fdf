"""The content-addressed cache: the files (store), what they are (index), who holds
each item (references, activities), and the projector that keeps the index current."""
