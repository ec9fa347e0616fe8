"""Arrow columns as numpy without pandas: pyarrow's ``to_numpy`` (and ``numpy.asarray`` of an Arrow array)
imports pandas, 0.2-0.5 s of a command's start, so the query paths read numeric buffers directly."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["numpy_values"]

_NUMPY = {pa.int8(): np.int8, pa.int16(): np.int16, pa.int32(): np.int32, pa.int64(): np.int64,
          pa.uint8(): np.uint8, pa.uint16(): np.uint16, pa.uint32(): np.uint32, pa.uint64(): np.uint64,
          pa.float32(): np.float32, pa.float64(): np.float64}


def numpy_values(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The values of a numeric column as a numpy array (a read-only view of the Arrow buffer when the column
    has no nulls; a column with nulls or of another type goes through Python objects).

    Examples
    --------
    >>> numpy_values(pa.array([1, 2, 3], pa.int8())).tolist()
    [1, 2, 3]
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.chunk(0) if arr.num_chunks == 1 else (arr.combine_chunks() if arr.num_chunks
                                                        else pa.array([], arr.type))
    dtype = _NUMPY.get(arr.type)
    if dtype is None or arr.null_count:
        return np.array(arr.to_pylist())
    return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr) + arr.offset)[arr.offset:]
