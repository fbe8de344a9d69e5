"""Hand-written LLVM IR for the replay kernels: a row's maximum and ties, prefetch hints.

Private to the kernels of ``rlv2.qlearning`` and ``rlv2.full_information``, which use
them for speed alone (measured in ``bench/``): none changes a result, so the kernels stay
equal to their readable learners bit for bit.

numba caches a compiled function by its own file only: after editing this module, delete
the cache files ``rlv2/__pycache__/*.nb[ic]`` so that the kernels using these intrinsics
are rebuilt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.core.base import BaseContext
from numba.core.typing.templates import Signature
from numba.extending import intrinsic
from numpy.typing import NDArray

_ROW_MAX_LANES = 8
"""Doubles per vector in ``row_max``: one AVX-512 register (two AVX2 ones elsewhere)."""
_FLOATS_PER_CACHE_LINE = 8


def _type_row_max(typingctx: object, q: types.Type, s: types.Type) -> tuple | None:
    """Type and generate ``row_max(q, s)`` for numba (it passes the typing context)."""
    if not (isinstance(q, types.Array) and q.ndim == 2 and q.layout == "C"):
        return None
    if q.dtype != types.float64:
        return None
    sig = types.float64(q, types.intp)
    lanes = _ROW_MAX_LANES
    vector = ir.VectorType(ir.DoubleType(), lanes)
    i32 = ir.IntType(32)

    def codegen(
        context: BaseContext, builder: ir.IRBuilder, signature: Signature, args: list[ir.Value]
    ) -> ir.Value:
        array_type = signature.args[0]
        array = context.make_array(array_type)(context, builder, args[0])
        intp = context.get_value_type(types.intp)
        row = cgutils.get_item_pointer(
            context, builder, array_type, array, [args[1], intp(0)], wraparound=False
        )
        n = cgutils.unpack_tuple(builder, array.shape, 2)[1]

        def larger(x: ir.Value, y: ir.Value) -> ir.Value:
            # x > y ? x : y, the scan's own comparison (one maxpd): a NaN x never wins
            return builder.select(builder.fcmp_ordered(">", x, y), x, y)

        def half(v: ir.Value, start: int, width: int) -> ir.Value:
            indices = ir.Constant(ir.VectorType(i32, width), list(range(start, start + width)))
            return builder.shuffle_vector(v, v, indices)

        acc = cgutils.alloca_once_value(builder, ir.Constant(vector, [-np.inf] * lanes))
        body = builder.and_(n, intp(-lanes))  # whole vectors
        with cgutils.for_range_slice(builder, intp(0), body, intp(lanes), intp) as (j, _):
            chunk_ptr = builder.bitcast(builder.gep(row, [j]), vector.as_pointer())
            builder.store(larger(builder.load(chunk_ptr, align=8), builder.load(acc)), acc)
        folded, width = builder.load(acc), lanes
        while width > 1:
            width //= 2
            folded = larger(half(folded, width, width), half(folded, 0, width))
        best = cgutils.alloca_once_value(builder, builder.extract_element(folded, i32(0)))
        with cgutils.for_range_slice(builder, body, n, intp(1), intp) as (j, _):
            builder.store(larger(builder.load(builder.gep(row, [j])), builder.load(best)), best)
        return builder.load(best)

    return sig, codegen


row_max = cast(Callable[[NDArray[np.float64], int], float], intrinsic(_type_row_max))
"""Largest non-NaN value of row ``q[s]`` (-inf if none), by vector max; exact in any order."""


def _type_row_ties(
    typingctx: object, q: types.Type, s: types.Type, best: types.Type
) -> tuple | None:
    """Type and generate ``row_ties(q, s, best)`` for numba (it passes the typing context)."""
    if not (isinstance(q, types.Array) and q.ndim == 2 and q.layout == "C"):
        return None
    if q.dtype != types.float64:
        return None
    sig = types.UniTuple(types.intp, 2)(q, types.intp, types.float64)
    lanes = _ROW_MAX_LANES
    vector = ir.VectorType(ir.DoubleType(), lanes)
    mask_type = ir.IntType(lanes)

    def codegen(
        context: BaseContext, builder: ir.IRBuilder, signature: Signature, args: list[ir.Value]
    ) -> ir.Value:
        array_type = signature.args[0]
        array = context.make_array(array_type)(context, builder, args[0])
        intp = context.get_value_type(types.intp)
        row = cgutils.get_item_pointer(
            context, builder, array_type, array, [args[1], intp(0)], wraparound=False
        )
        n = cgutils.unpack_tuple(builder, array.shape, 2)[1]
        best = args[2]
        module = builder.module
        popcount = module.declare_intrinsic("llvm.ctpop", [intp])
        trailing = module.declare_intrinsic("llvm.cttz", [intp, ir.IntType(1)])

        def tally(equal: ir.Value, bits: ir.IntType, start: ir.Value) -> None:
            # equal: one flag per lane from ``start``; count them, keep the first one's index
            hits = builder.zext(builder.bitcast(equal, bits), intp)
            count_now = builder.add(builder.load(count), builder.call(popcount, [hits]))
            builder.store(count_now, count)
            first_now = builder.load(first)
            at = builder.add(start, builder.call(trailing, [hits, ir.Constant(ir.IntType(1), 0)]))
            none_yet = builder.icmp_signed("==", first_now, n)
            take = builder.and_(none_yet, builder.icmp_unsigned("!=", hits, intp(0)))
            builder.store(builder.select(take, at, first_now), first)

        count = cgutils.alloca_once_value(builder, intp(0))
        first = cgutils.alloca_once_value(builder, n)
        splat = builder.insert_element(ir.Constant(vector, ir.Undefined), best, ir.IntType(32)(0))
        zeros = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
        best_vector = builder.shuffle_vector(splat, splat, zeros)
        body = builder.and_(n, intp(-lanes))  # whole vectors
        with cgutils.for_range_slice(builder, intp(0), body, intp(lanes), intp) as (j, _):
            chunk_ptr = builder.bitcast(builder.gep(row, [j]), vector.as_pointer())
            equal = builder.fcmp_ordered("==", builder.load(chunk_ptr, align=8), best_vector)
            tally(equal, mask_type, j)
        with cgutils.for_range_slice(builder, body, n, intp(1), intp) as (j, _):
            equal = builder.fcmp_ordered("==", builder.load(builder.gep(row, [j])), best)
            tally(equal, ir.IntType(1), j)
        return context.make_tuple(
            builder, signature.return_type, [builder.load(first), builder.load(count)]
        )

    return sig, codegen


row_ties = cast(
    Callable[[NDArray[np.float64], int, float], tuple[int, int]], intrinsic(_type_row_ties)
)
"""(first index, count) of the entries of row ``q[s]`` equal to ``best`` ((n, 0) if none).

One vector comparison per 8 entries, its lane mask counted and searched with scalar bit
instructions (popcount, trailing zeros): the exploit step's tie test at the cost of the
first-index search alone.
"""


def _type_prefetch(typingctx, arr, i, j):
    """Type and generate ``_prefetch(arr, i, j)`` for numba (it passes the typing context)."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2):
        return None
    sig = types.void(arr, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        array = context.make_array(array_type)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(
            context, builder, array_type, array, [args[1], args[2]], wraparound=False
        )
        i8_ptr = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8_ptr, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        # (address, read, high temporal locality, data cache)
        builder.call(fn, [builder.bitcast(ptr, i8_ptr), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


_prefetch = cast(Callable[[NDArray[np.float64], int, int], None], intrinsic(_type_prefetch))
"""Hint the CPU to start loading the cache line of ``arr[i, j]``; never changes results."""


@numba.njit(cache=True, nogil=True, inline="always")
def prefetch_row(rewards: NDArray[np.float64], row: int) -> None:
    """Hint the CPU to start loading every cache line of ``rewards[row]``."""
    n_cols = rewards.shape[1]
    for j in range(0, n_cols, _FLOATS_PER_CACHE_LINE):
        _prefetch(rewards, row, j)
    _prefetch(rewards, row, n_cols - 1)
