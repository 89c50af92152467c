"""statten-hw quant."""
