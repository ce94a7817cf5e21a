"""The pure long-tail math: tensors/arrays in, tensors/arrays out. Imports torch and numpy only."""
