import pytest
import torch

from napari_cytomask.progress import host_out_of_memory, out_of_memory


@pytest.mark.parametrize(
    "err",
    [
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB."),
        RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be asynchronously"),
        # A nearly full GPU fails in CUDA's libraries first: no advice was given, and SAM2
        # did not retry with a smaller batch.
        RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
        RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
        RuntimeError("cuFFT error: CUFFT_ALLOC_FAILED"),
    ],
)
def test_a_gpu_out_of_memory_is_told_however_cuda_says_it(err):
    assert out_of_memory(err) and not host_out_of_memory(err)


def test_other_cuda_errors_are_not_taken_for_memory_running_out():
    assert not out_of_memory(RuntimeError("CUDA error: CUBLAS_STATUS_EXECUTION_FAILED"))
    assert not out_of_memory(RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED"))
