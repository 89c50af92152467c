"""statten-hw ir."""
