import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { AcquireRequest as _rtpengine_k8s_v1_AcquireRequest, AcquireRequest__Output as _rtpengine_k8s_v1_AcquireRequest__Output } from './rtpengine_k8s/v1/AcquireRequest.js';
import type { Address as _rtpengine_k8s_v1_Address, Address__Output as _rtpengine_k8s_v1_Address__Output } from './rtpengine_k8s/v1/Address.js';
import type { Allocation as _rtpengine_k8s_v1_Allocation, Allocation__Output as _rtpengine_k8s_v1_Allocation__Output } from './rtpengine_k8s/v1/Allocation.js';
import type { AllocatorClient as _rtpengine_k8s_v1_AllocatorClient, AllocatorDefinition as _rtpengine_k8s_v1_AllocatorDefinition } from './rtpengine_k8s/v1/Allocator.js';
import type { GetRequest as _rtpengine_k8s_v1_GetRequest, GetRequest__Output as _rtpengine_k8s_v1_GetRequest__Output } from './rtpengine_k8s/v1/GetRequest.js';
import type { ListRequest as _rtpengine_k8s_v1_ListRequest, ListRequest__Output as _rtpengine_k8s_v1_ListRequest__Output } from './rtpengine_k8s/v1/ListRequest.js';
import type { ListResponse as _rtpengine_k8s_v1_ListResponse, ListResponse__Output as _rtpengine_k8s_v1_ListResponse__Output } from './rtpengine_k8s/v1/ListResponse.js';
import type { PodRef as _rtpengine_k8s_v1_PodRef, PodRef__Output as _rtpengine_k8s_v1_PodRef__Output } from './rtpengine_k8s/v1/PodRef.js';
import type { ReleaseRequest as _rtpengine_k8s_v1_ReleaseRequest, ReleaseRequest__Output as _rtpengine_k8s_v1_ReleaseRequest__Output } from './rtpengine_k8s/v1/ReleaseRequest.js';
import type { ReleaseResponse as _rtpengine_k8s_v1_ReleaseResponse, ReleaseResponse__Output as _rtpengine_k8s_v1_ReleaseResponse__Output } from './rtpengine_k8s/v1/ReleaseResponse.js';
import type { RenewRequest as _rtpengine_k8s_v1_RenewRequest, RenewRequest__Output as _rtpengine_k8s_v1_RenewRequest__Output } from './rtpengine_k8s/v1/RenewRequest.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  rtpengine_k8s: {
    v1: {
      AcquireRequest: MessageTypeDefinition<_rtpengine_k8s_v1_AcquireRequest, _rtpengine_k8s_v1_AcquireRequest__Output>
      Address: MessageTypeDefinition<_rtpengine_k8s_v1_Address, _rtpengine_k8s_v1_Address__Output>
      Allocation: MessageTypeDefinition<_rtpengine_k8s_v1_Allocation, _rtpengine_k8s_v1_Allocation__Output>
      Allocator: SubtypeConstructor<typeof grpc.Client, _rtpengine_k8s_v1_AllocatorClient> & { service: _rtpengine_k8s_v1_AllocatorDefinition }
      GetRequest: MessageTypeDefinition<_rtpengine_k8s_v1_GetRequest, _rtpengine_k8s_v1_GetRequest__Output>
      ListRequest: MessageTypeDefinition<_rtpengine_k8s_v1_ListRequest, _rtpengine_k8s_v1_ListRequest__Output>
      ListResponse: MessageTypeDefinition<_rtpengine_k8s_v1_ListResponse, _rtpengine_k8s_v1_ListResponse__Output>
      PodRef: MessageTypeDefinition<_rtpengine_k8s_v1_PodRef, _rtpengine_k8s_v1_PodRef__Output>
      ReleaseRequest: MessageTypeDefinition<_rtpengine_k8s_v1_ReleaseRequest, _rtpengine_k8s_v1_ReleaseRequest__Output>
      ReleaseResponse: MessageTypeDefinition<_rtpengine_k8s_v1_ReleaseResponse, _rtpengine_k8s_v1_ReleaseResponse__Output>
      RenewRequest: MessageTypeDefinition<_rtpengine_k8s_v1_RenewRequest, _rtpengine_k8s_v1_RenewRequest__Output>
    }
  }
}

