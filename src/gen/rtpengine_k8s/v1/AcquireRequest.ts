// Original file: proto/allocator.proto

import type { PodRef as _rtpengine_k8s_v1_PodRef, PodRef__Output as _rtpengine_k8s_v1_PodRef__Output } from '../../rtpengine_k8s/v1/PodRef.js';

export interface AcquireRequest {
  'pod'?: (_rtpengine_k8s_v1_PodRef | null);
  'pools'?: (string)[];
  'interface'?: (string);
}

export interface AcquireRequest__Output {
  'pod': (_rtpengine_k8s_v1_PodRef__Output | null);
  'pools': (string)[];
  'interface': (string);
}
