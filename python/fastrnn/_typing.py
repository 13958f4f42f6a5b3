"""The type aliases of fastrnn's annotations: NumPy arrays as ``numpy.typing.NDArray``.

Arguments take anything NumPy converts (``ArrayLike``: arrays, nested lists, torch tensors); every
result is a NumPy array of the argument's float dtype (float32 or float64).
"""

from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

#: A float32 or float64 array: what every layer and function returns.
FloatArray: TypeAlias = NDArray[np.floating[Any]]
#: An integer array (class indices, token ids, sequence lengths).
IntArray: TypeAlias = NDArray[np.integer[Any]]
#: A float dtype as an argument: "float32", "float64", np.float32, np.dtype("float64")...
FloatDTypeLike: TypeAlias = str | type[np.floating[Any]] | np.dtype[Any]
#: The dtype of a float32 or float64 array.
FloatDType: TypeAlias = np.dtype[np.floating[Any]]
#: A seed: None (fresh entropy), an int >= 0, or a numpy Generator used as it is.
SeedLike: TypeAlias = int | np.random.Generator | None
