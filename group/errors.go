package group

import "errors"

// Errors returned to members. Each maps to one Kafka error code in the
// server.
var (
	ErrInvalidGroupID          = errors.New("group: invalid group id")
	ErrInvalidSessionTimeout   = errors.New("group: session timeout outside the allowed range")
	ErrInconsistentProtocol    = errors.New("group: protocol type or protocols do not match the group's")
	ErrUnknownMember           = errors.New("group: unknown member id")
	ErrIllegalGeneration       = errors.New("group: generation is not the group's current one")
	ErrRebalanceInProgress     = errors.New("group: rebalance in progress")
	ErrMemberIDRequired        = errors.New("group: member id required; rejoin with the given id")
	ErrFencedInstanceID        = errors.New("group: static member replaced by a newer member with the same instance id")
	ErrCoordinatorNotAvailable = errors.New("group: coordinator not available")
	ErrNotCoordinator          = errors.New("group: this broker is not the group coordinator")
	ErrGroupNotFound           = errors.New("group: no such group")
	ErrNonEmptyGroup           = errors.New("group: group has members")
	ErrSubscribedToTopic       = errors.New("group: a member is subscribed to the topic")
	ErrMetadataTooLarge        = errors.New("group: offset metadata larger than the limit")
	ErrUnknownPartition        = errors.New("group: unknown topic or partition")
	ErrMemberMetadataTooLarge  = errors.New("group: member protocol metadata larger than the limit")
	ErrGroupFull               = errors.New("group: group has the maximum number of members")
)
